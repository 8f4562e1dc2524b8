//! Checks JSON request bodies before the API or MCP reads them: a key
//! written twice in one object is refused (serde would silently keep the
//! last, so `"local_part":"a","local_part":"postmaster"` would pass a
//! reviewer's eye as "a"), and so is a body that is not JSON or is nested
//! deeper than a parser should follow. Both get 400 with a clear message.

use std::cell::Cell;
use std::collections::HashSet;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Walks any JSON value; the first key repeated in one object is noted in
/// `duplicate` (the parse then stops).
struct Check<'a> {
    duplicate: &'a Cell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Check {
                duplicate: self.duplicate,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                self.duplicate.set(Some(key.chars().take(64).collect()));
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Check {
                duplicate: self.duplicate,
            })?;
        }
        Ok(())
    }
}

/// Why a JSON body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    #[error("the key {0:?} appears twice in one object; send each key once")]
    DuplicateKey(String),
    #[error("the JSON body is nested too deeply (at most 128 levels are read)")]
    TooDeep,
    #[error("the body is not valid JSON: {0}")]
    Invalid(String),
}

impl JsonProblem {
    pub fn code(&self) -> &'static str {
        match self {
            JsonProblem::DuplicateKey(_) => "duplicate_key",
            JsonProblem::TooDeep | JsonProblem::Invalid(_) => "bad_request",
        }
    }
}

/// Why a JSON body is refused; None when it is fine.
pub fn problem(body: &[u8]) -> Option<JsonProblem> {
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Check {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(key) = duplicate.take() {
        return Some(JsonProblem::DuplicateKey(key));
    }
    match parsed {
        Ok(()) => None,
        Err(e) if e.is_syntax() && e.to_string().starts_with("recursion limit") => {
            Some(JsonProblem::TooDeep)
        }
        Err(e) => Some(JsonProblem::Invalid(e.to_string())),
    }
}

pub fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

/// How a refusal is written: the API's error shape, or JSON-RPC for MCP.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Api,
    JsonRpc,
}

fn refusal(shape: Shape, code: &str, message: &str) -> Response {
    let body = match shape {
        Shape::Api => serde_json::json!({"code": code, "message": message}),
        Shape::JsonRpc => serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": message},
        }),
    };
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(body.to_string())
}

/// Wraps an endpoint so its JSON bodies are checked first.
pub async fn guard<E: Endpoint>(next: E, mut req: Request, shape: Shape) -> poem::Result<Response> {
    if is_json(&req) {
        let bytes = match req.take_body().into_bytes().await {
            Ok(b) => b,
            Err(_) => return Ok(refusal(shape, "bad_request", "the body could not be read")),
        };
        if !bytes.is_empty()
            && let Some(why) = problem(&bytes)
        {
            return Ok(refusal(shape, why.code(), &why.to_string()));
        }
        req.set_body(bytes);
    }
    Ok(next.call(req).await?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_at_any_depth_and_deep_nesting_are_refused() {
        assert_eq!(problem(br#"{"a":1,"b":[{"c":1,"d":2}]}"#), None);
        assert_eq!(
            problem(br#"{"items":[{"local_part":"a","local_part":"postmaster"}]}"#),
            Some(JsonProblem::DuplicateKey("local_part".into()))
        );
        // A key's name cannot pass for another problem.
        assert_eq!(
            problem(br#"{"recursion limit":1,"recursion limit":2}"#),
            Some(JsonProblem::DuplicateKey("recursion limit".into()))
        );
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(problem(deep.as_bytes()), Some(JsonProblem::TooDeep));
        assert!(matches!(problem(b"{nope"), Some(JsonProblem::Invalid(_))));
        assert!(matches!(problem(b"{} {}"), Some(JsonProblem::Invalid(_))));
        // The same key in two different objects is fine.
        assert_eq!(problem(br#"[{"a":1},{"a":2}]"#), None);
    }
}
