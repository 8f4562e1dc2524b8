//! Where a JSON body breaks the API's document. poem-openapi refuses such a
//! body naming only the types it was parsing ("Expected input type
//! integer_int64, found "2GB""), not the item or the field; this walks the
//! body against the OpenAPI document to name them
//! (`items[1].storage_allocation_mb`).

use serde_json::Value;

/// One problem in a body: where, and what is wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyProblem {
    /// The place in the body, e.g. `items[1].storage_allocation_mb`.
    pub at: String,
    /// The index in a top-level `items` list, when the problem is in one.
    pub index: Option<usize>,
    /// The field at fault (the last name in `at`).
    pub field: String,
    /// `invalid_type`, `missing_field`, `unknown_field` or `too_long`.
    pub code: &'static str,
    pub words: String,
}

/// A query or path parameter poem-openapi refused ("failed to parse
/// parameter `limit`: verification failed. minimum(1, exclusive: false)"),
/// in words: "limit must be at least 1". None for any other message.
pub fn parameter_words(message: &str) -> Option<String> {
    let rest = message.strip_prefix("failed to parse parameter `")?;
    let (name, reason) = rest.split_once("`: ")?;
    let Some(rule) = reason.strip_prefix("verification failed. ") else {
        return Some(format!("{name}: {reason}"));
    };
    let arg = |prefix: &str| {
        rule.strip_prefix(prefix)
            .and_then(|r| r.split([',', ')']).next())
            .map(str::trim)
    };
    let exclusive = rule.contains("exclusive: true");
    Some(if let Some(n) = arg("minimum(") {
        let bound = if exclusive { "more than" } else { "at least" };
        format!("{name} must be {bound} {n}")
    } else if let Some(n) = arg("maximum(") {
        let bound = if exclusive { "less than" } else { "at most" };
        format!("{name} must be {bound} {n}")
    } else if let Some(n) = arg("maxLength(") {
        format!("{name} must be at most {n} characters long")
    } else if let Some(n) = arg("minLength(") {
        format!("{name} must be at least {n} characters long")
    } else {
        format!("{name}: {reason}")
    })
}

/// Each operation's path segments, method and request body schema.
pub struct BodySchemas {
    doc: Value,
    operations: Vec<(Vec<String>, String, Value)>,
}

impl BodySchemas {
    /// From the document as `/api/v1/openapi.json` serves it.
    pub fn new(spec: &str) -> Self {
        let doc: Value = serde_json::from_str(spec).unwrap_or_default();
        let mut operations = Vec::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            let segments: Vec<String> = format!("/api/v1{path}")
                .split('/')
                .map(str::to_string)
                .collect();
            for (method, op) in ops.as_object().into_iter().flatten() {
                let schema = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                    .map(|c| c["schema"].clone());
                if let Some(schema) = schema {
                    operations.push((segments.clone(), method.to_lowercase(), schema));
                }
            }
        }
        Self { doc, operations }
    }

    /// The first problem of `body` sent to `method path`, when the document
    /// can tell it.
    pub fn locate(&self, method: &str, path: &str, body: &[u8]) -> Option<BodyProblem> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let parts: Vec<&str> = path.split('/').collect();
        let (_, _, schema) = self.operations.iter().find(|(segs, m, _)| {
            m.eq_ignore_ascii_case(method)
                && segs.len() == parts.len()
                && segs
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s == p || (s.starts_with('{') && s.ends_with('}')))
        })?;
        let mut problem = self.walk(schema, &value, "", true)?;
        problem.index = top_level_index(&problem.at);
        Some(problem)
    }

    /// `{"$ref": …}`, alone or as the one entry of `allOf`, to its schema.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let reference = schema["$ref"].as_str().or_else(|| {
            schema["allOf"]
                .as_array()
                .filter(|a| a.len() == 1)
                .and_then(|a| a[0]["$ref"].as_str())
        });
        match reference.and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => &self.doc["components"]["schemas"][name],
            None => schema,
        }
    }

    fn walk(&self, schema: &Value, value: &Value, at: &str, required: bool) -> Option<BodyProblem> {
        let schema = self.resolve(schema);
        if value.is_null() {
            return required.then(|| problem(at, "invalid_type", "is empty; give a value".into()));
        }
        match schema["type"].as_str() {
            Some("object") => {
                let Some(fields) = value.as_object() else {
                    return Some(problem(
                        at,
                        "invalid_type",
                        format!("expected an object, found {}", shown(value)),
                    ));
                };
                let properties = schema["properties"].as_object();
                let wanted: Vec<&str> = schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for name in &wanted {
                    if fields.get(*name).is_none_or(Value::is_null) {
                        return Some(problem(
                            &join(at, name),
                            "missing_field",
                            "is missing; it is required".into(),
                        ));
                    }
                }
                for (name, v) in fields {
                    match properties.and_then(|p| p.get(name)) {
                        Some(s) => {
                            if let Some(p) =
                                self.walk(s, v, &join(at, name), wanted.contains(&name.as_str()))
                            {
                                return Some(p);
                            }
                        }
                        None if schema["additionalProperties"] == Value::Bool(false) => {
                            let known: Vec<&str> = properties
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            // The client's own key, kept short.
                            let name: String = name.chars().take(40).collect();
                            return Some(problem(
                                &join(at, &name),
                                "unknown_field",
                                format!("is not a field here; the fields are {}", known.join(", ")),
                            ));
                        }
                        None => {}
                    }
                }
                None
            }
            Some("array") => {
                let Some(items) = value.as_array() else {
                    return Some(problem(
                        at,
                        "invalid_type",
                        format!("expected a list, found {}", shown(value)),
                    ));
                };
                items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| self.walk(&schema["items"], v, &format!("{at}[{i}]"), true))
            }
            Some("integer") if value.as_i64().is_none() && value.as_u64().is_none() => {
                Some(problem(
                    at,
                    "invalid_type",
                    format!("expected a whole number, found {}", shown(value)),
                ))
            }
            Some("number") if !value.is_number() => Some(problem(
                at,
                "invalid_type",
                format!("expected a number, found {}", shown(value)),
            )),
            Some("boolean") if !value.is_boolean() => Some(problem(
                at,
                "invalid_type",
                format!("expected true or false, found {}", shown(value)),
            )),
            Some("string") => match value.as_str() {
                None => Some(problem(
                    at,
                    "invalid_type",
                    format!("expected text, found {}", shown(value)),
                )),
                Some(s) => schema["maxLength"]
                    .as_u64()
                    .filter(|max| s.chars().count() as u64 > *max)
                    .map(|max| problem(at, "too_long", format!("is longer than {max} characters"))),
            },
            _ => None,
        }
    }
}

fn problem(at: &str, code: &'static str, words: String) -> BodyProblem {
    let field = at
        .rsplit(['.', '['])
        .next()
        .unwrap_or(at)
        .trim_end_matches(']')
        .to_string();
    BodyProblem {
        at: if at.is_empty() {
            "the body".into()
        } else {
            at.to_string()
        },
        index: None,
        field,
        code,
        words,
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// `items[3]…` → 3: the index the API's item errors use.
fn top_level_index(at: &str) -> Option<usize> {
    let rest = at.strip_prefix("items[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// A value as the client wrote it, kept short.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas() -> BodySchemas {
        BodySchemas::new(&super::super::spec_json("https://m.example"))
    }

    fn bulk(body: &str) -> Option<BodyProblem> {
        schemas().locate("POST", "/api/v1/mailboxes/invites:bulk", body.as_bytes())
    }

    #[test]
    fn each_kind_of_problem_is_named_with_its_item_and_field() {
        let p = bulk(
            r#"{"items":[{"local_part":"a","recipient_email":"a@x.org"},
                {"local_part":"b","recipient_email":"b@x.org","storage_allocation_mb":"2GB"}]}"#,
        )
        .unwrap();
        assert_eq!(p.at, "items[1].storage_allocation_mb");
        assert_eq!(
            (p.index, p.field.as_str(), p.code),
            (Some(1), "storage_allocation_mb", "invalid_type")
        );
        assert_eq!(p.words, r#"expected a whole number, found "2GB""#);

        let p = bulk(r#"{"items":[{"local_part":"a","recipient_email":"a@x.org","quota":5}]}"#)
            .unwrap();
        assert_eq!((p.at.as_str(), p.code), ("items[0].quota", "unknown_field"));
        assert!(p.words.contains("storage_allocation_mb"), "{}", p.words);

        let p = bulk(r#"{"items":[{"local_part":"a"}]}"#).unwrap();
        assert_eq!(
            (p.at.as_str(), p.code),
            ("items[0].recipient_email", "missing_field")
        );

        let p = bulk(r#"{"items":{"local_part":"a"}}"#).unwrap();
        assert_eq!((p.at.as_str(), p.index), ("items", None));
        assert!(p.words.starts_with("expected a list"), "{}", p.words);

        let p = bulk(r#"{"domain":7,"items":[]}"#).unwrap();
        assert_eq!(p.at, "domain");
        assert_eq!(bulk(r#"{"items":[]}"#), None, "a body the document takes");
        assert_eq!(schemas().locate("POST", "/api/v1/nowhere", b"{}"), None);
    }

    #[test]
    fn a_refused_parameter_is_named_in_words() {
        let words = |m: &str| parameter_words(m);
        assert_eq!(
            words(
                "failed to parse parameter `limit`: verification failed. minimum(1, exclusive: false)"
            ),
            Some("limit must be at least 1".into())
        );
        assert_eq!(
            words(
                "failed to parse parameter `limit`: verification failed. maximum(500, exclusive: false)"
            ),
            Some("limit must be at most 500".into())
        );
        assert_eq!(
            words("failed to parse parameter `q`: verification failed. maxLength(200)"),
            Some("q must be at most 200 characters long".into())
        );
        assert_eq!(
            words("failed to parse parameter `limit`: invalid digit found in string"),
            Some("limit: invalid digit found in string".into())
        );
        assert_eq!(words("parse request payload error: x"), None);
    }
}
