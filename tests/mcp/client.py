"""A real MCP client (the official Python SDK) against Muster.

Usage:
  client.py http URL TOKEN         streamable HTTP at URL (e.g. http://127.0.0.1:8080/mcp)
  client.py stdio COMMAND ARGS...  a server started over stdio
  client.py call URL TOKEN TOOL ARGS_JSON
                                   one tool call over HTTP; prints its result as JSON

Lists the tools, calls each, checks results and errors, and prints one
line per check. Exits non-zero on the first failed check.
"""

import asyncio
import json
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "create_invites_bulk": False,
    "preview_invites": True,
    "list_pending_invites": True,
    "get_batch_status": True,
    "resend_invite": False,
    "revoke_invite": False,
    "get_capacity": True,
    "preview_resend_pending": True,
    "resend_pending_invites": False,
}


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def items(n, prefix):
    return [
        {"local_part": f"{prefix}{i}", "recipient_email": f"{prefix}{i}@elsewhere.org"}
        for i in range(n)
    ]


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def exercise(session, prefix):
    await session.initialize()
    listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    check(set(EXPECTED_TOOLS) <= set(tools), f"the tools are listed: {sorted(tools)}")
    for name, read_only in EXPECTED_TOOLS.items():
        t = tools[name]
        check(bool(t.description), f"{name} has a description")
        ann = t.annotations
        check(ann is not None and bool(ann.read_only_hint) == read_only, f"{name} is marked read_only={read_only}")
    check(tools["revoke_invite"].annotations.destructive_hint is True, "revoke_invite is marked destructive")
    schema = tools["create_invites_bulk"].input_schema
    items_schema = schema["properties"]["items"]
    check(items_schema.get("maxItems") == 100 and items_schema.get("minItems") == 1, "items are limited to 1..100 in the schema")
    item_props = json.dumps(schema)
    check("description" in item_props and "local_part" in item_props, "the input schema describes the item fields")

    r = await session.call_tool("get_capacity", {})
    check(not r.is_error and r.structured_content["domains"][0]["cap"] >= 1, "get_capacity: " + text_of(r).splitlines()[0])

    r = await session.call_tool("preview_invites", {"items": items(3, prefix) + [{"local_part": "x", "recipient_email": "nope"}]})
    sc = r.structured_content
    check(not r.is_error and sc["clean_rows"] == 3 and sc["flagged_rows"] == 1, "preview_invites flags the bad item: " + text_of(r))

    # A size in words is read as a CSV cell is; one that cannot be read is
    # flagged with its item, not refused as a type error.
    sized = items(3, prefix + "size")
    sized[0]["storage_allocation_mb"] = "500MB"
    sized[1]["storage_allocation_mb"] = "lots"
    sized[2]["storage_allocation_mb"] = 1.5
    r = await session.call_tool("preview_invites", {"items": sized})
    sc = r.structured_content
    check(not r.is_error and sc["rows"][0]["storage_allocation_mb"] == 500
          and [f["code"] for f in sc["rows"][1]["flags"]] == ["invalid_allocation"]
          and [f["code"] for f in sc["rows"][2]["flags"]] == ["invalid_allocation"],
          "a size in words is read, a bad one or a fraction flagged: " + text_of(r))

    r = await session.call_tool("create_invites_bulk", {"items": items(101, prefix + "big")})
    check(r.is_error and r.structured_content["code"] == "too_many_items", "101 items are refused: " + text_of(r))

    bad = items(3, prefix + "bad")
    bad[1]["recipient_email"] = "not an address"
    r = await session.call_tool("create_invites_bulk", {"items": bad})
    errs = r.structured_content.get("errors", [])
    check(r.is_error and r.structured_content["code"] == "flagged_items"
          and any(e["index"] == 1 and e["code"] == "invalid_recipient_email" for e in errs),
          "a flagged item refuses the whole call, with per-item errors")

    args = {"items": items(3, prefix), "expires_in": "7d", "idempotency_key": prefix + "-key"}
    r = await session.call_tool("create_invites_bulk", args)
    check(not r.is_error, "create_invites_bulk: " + text_of(r))
    batch = r.structured_content["batch_id"]
    invites = r.structured_content["invites"]
    check(len(invites) == 3 and invites[0]["mailbox"].startswith(prefix + "0@"), "each item got an invite")
    again = await session.call_tool("create_invites_bulk", args)
    check(not again.is_error and again.structured_content["batch_id"] == batch, "the same idempotency key replays the first result")

    r = await session.call_tool("get_batch_status", {"batch_id": batch})
    check(not r.is_error and len(r.structured_content["invites"]) == 3, "get_batch_status: " + text_of(r))

    r = await session.call_tool("list_pending_invites", {"batch_id": batch, "limit": 2})
    sc = r.structured_content
    check(not r.is_error and len(sc["invites"]) == 2 and sc["next_cursor"], "list_pending_invites pages")
    r = await session.call_tool("list_pending_invites", {"batch_id": batch, "limit": 100})
    listed = r.structured_content["invites"]
    check(len(listed) == 3 and all(i["batch_id"] == batch for i in listed), "list_pending_invites takes one batch only")
    r = await session.call_tool("list_pending_invites", {"batch_id": "no-such-batch"})
    check(not r.is_error and r.structured_content["invites"] == [], "an unknown batch lists nothing")

    first = invites[0]["invite_id"]
    r = await session.call_tool("resend_invite", {"invite_id": first})
    check(not r.is_error and r.structured_content["link_state"] == "live", "resend_invite: " + text_of(r))
    r = await session.call_tool("revoke_invite", {"invite_id": first})
    check(not r.is_error and r.structured_content["link_state"] == "revoked", "revoke_invite: " + text_of(r))
    r = await session.call_tool("revoke_invite", {"invite_id": first})
    check(r.is_error and r.structured_content["code"] == "invite_state", "revoking twice is refused")
    r = await session.call_tool("get_batch_status", {"batch_id": "no-such-batch"})
    check(r.is_error and r.structured_content["code"] == "no_such_batch", "an unknown batch is refused")

    r = await session.call_tool("create_invites_bulk", {"items": items(2, prefix + "r"), "expires_in": "7d", "reminders": ["50%", "10d"]})
    sc = r.structured_content
    check(r.is_error and sc["code"] == "invalid_reminders" and "reminders[1]" in sc["message"],
          "a reminder outside the links' life is refused by name: " + text_of(r))
    r = await session.call_tool("create_invites_bulk", {"items": items(2, prefix + "r"), "expires_in": "7d", "reminders": []})
    check(not r.is_error and r.structured_content["reminders"] == [], "reminders can be turned off for a batch")
    r = await session.call_tool("create_invites_bulk", {"items": items(1, prefix + "d"), "expires_in": "7d"})
    check(not r.is_error and r.structured_content["reminders"] == ["50%", "2d"], "the default reminders: " + json.dumps(r.structured_content["reminders"]))
    r = await session.call_tool("preview_resend_pending", {"older_than": "1d"})
    check(not r.is_error and r.structured_content["count"] == 0, "nothing has waited a day yet: " + text_of(r))
    r = await session.call_tool("preview_resend_pending", {"older_than": "10m"})
    check(r.is_error and r.structured_content["code"] == "invalid_older_than", "a wait under an hour is refused")
    r = await session.call_tool("resend_pending_invites", {"older_than": "1d", "invite_ids": [first]})
    sc = r.structured_content
    check(not r.is_error and sc["resent"] == [] and sc["skipped"][0]["invite_id"] == first,
          "an invite not waiting is skipped, with why: " + text_of(r))


async def over_http(url, token):
    # Without a token, or with a wrong one, the endpoint refuses.
    async with httpx2.AsyncClient() as raw:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream"}
        r = await raw.post(url, json=body, headers=headers)
        check(r.status_code == 401, f"no token: {r.status_code}")
        r = await raw.post(url, json=body, headers={**headers, "Authorization": "Bearer mst_wrong"})
        check(r.status_code == 403, f"a bad token: {r.status_code}")
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await exercise(session, "http")


async def over_stdio(command, args):
    params = StdioServerParameters(command=command, args=args)
    async with stdio_client(params) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")


async def call_once(url, token, tool, args):
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                r = await session.call_tool(tool, json.loads(args))
                print(json.dumps({"is_error": r.is_error, "structured": r.structured_content, "text": text_of(r)}))


def main():
    mode = sys.argv[1]
    if mode == "call":
        asyncio.run(call_once(*sys.argv[2:6]))
        return
    if mode == "http":
        asyncio.run(over_http(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(over_stdio(sys.argv[2], sys.argv[3:]))
    print("all checks passed")


if __name__ == "__main__":
    main()
