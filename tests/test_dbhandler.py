"""mod.db.dbhandler: queries whose effects no protocol test sees directly."""

from __future__ import annotations

import json

from mod.db import dbhandler as db
from mod.db import schema
from mod.db.engine import Conn, Engine


def test_purge_removes_only_expired_tokens_and_old_retry_records(engine: Engine) -> None:
    engine.write_sync(db.add_token, "u1", "expired", 100, 200)
    engine.write_sync(db.add_token, "u1", "valid", 100, 10_000)
    engine.write_sync(db.txn_store, "old", "r1", 100)
    engine.write_sync(db.txn_store, "new", "r2", 5_000)
    assert engine.write_sync(db.purge_expired, 1_000, 1_000) == 2
    assert engine.read_sync(db.token_owner, "valid", 1_000) == ("u1", 10_000, "")
    assert engine.read_sync(db.token_owner, "expired", 150) is None
    assert engine.read_sync(db.txn_result, "new", 0) == "r2"
    assert engine.read_sync(db.txn_result, "old", 0) is None


def test_page_json_matches_the_rows_it_renders(engine: Engine) -> None:
    engine.write_sync(db.create_user, "u1", "ann", "h", "Ann", "", 100, 5)
    engine.write_sync(db.create_flow, "f1", "group", "t", "", "u1", ["u1"], 6)
    texts = ['plain', 'quotes "q" and \\ slash', "unicode é 😀 \u2028", "line\nbreak"]
    for number, text in enumerate(texts):
        engine.write_sync(db.insert_message, f"m{number}", "f1", "u1", number,
                          {"text": text, "emoji": "😀" if number else ""}, 10 + number)
    engine.write_sync(db.update_message, "m1", "u1", {"text": "edited"}, 50, "message_edited")
    page = json.loads(engine.read_sync(db.messages_page_json, "f1", 1, 2))
    assert [message["uuid"] for message in page] == ["m1", "m2"]
    assert page[0]["text"] == "edited" and page[0]["edited_status"] is True
    assert page[1]["text"] == texts[2] and page[1]["edited_status"] is False
    extension_keys = ("reply_to", "reactions", "mentions", "file_name", "file_type")  # asked for
    stored = [key for key in db.MessageRow.__annotations__ if key not in extension_keys]
    assert list(page[0]) == stored
    extended = json.loads(engine.read_sync(db.messages_page_json, "f1", 1, 2, 0, True, True,
                                           True, True))
    assert [list(message)[len(stored):] for message in extended] == [
        list(extension_keys)] * 2
    assert extended[0]["reply_to"] is None and extended[0]["reactions"] == [] \
        and extended[0]["mentions"] == [] and extended[0]["file_name"] is None
    assert page == engine.read_sync(db.messages_by_uuid, ["m1", "m2"])
    assert json.loads(engine.read_sync(db.messages_page_json, "f1", 10, 5)) == []
    assert [m["uuid"] for m in json.loads(
        engine.read_sync(db.messages_page_json, "f1", 0, 10, 11))] == ["m2", "m3"]


def test_migrate_adds_the_invite_only_column_to_an_older_database(engine: Engine) -> None:
    def downgrade(conn: Conn) -> None:
        conn.execute("ALTER TABLE flows DROP COLUMN invite_only")
        conn.execute("ALTER TABLE flows DROP COLUMN encrypted")  # added later still
        for uuid, kind in (("g1", "group"), ("c1", "chat")):
            conn.execute("INSERT INTO flows (uuid, time_created, flow_type, title, info, owner) "
                       f"VALUES ('{uuid}', 1, '{kind}', '', '', 'u1')")

    engine.write_sync(downgrade)
    steps = [step.version for step in schema.migrate(engine).steps]
    assert steps == list(range(2, schema.CURRENT + 1))
    assert schema.migrate(engine).steps == []  # and once is enough
    flows = {flow["uuid"]: flow for flow in engine.read_sync(db.flows_by_uuid, ["g1", "c1"])}
    assert flows["g1"]["private"] is False and flows["c1"]["private"] is True
    assert [flow["uuid"] for flow in engine.read_sync(db.visible_flows, "u2")] == ["g1"]
    assert engine.read_sync(db.flow_access, "g1", "u1") == ("group", "u1", False, False)


def test_invite_only_flows_are_listed_to_members_and_invitees_only(engine: Engine) -> None:
    engine.write_sync(db.create_user, "u1", "ann", "h", "Ann", "", 100, 5)
    engine.write_sync(db.create_user, "u2", "bob", "h", "Bob", "", 100, 5)
    engine.write_sync(db.create_flow, "open", "group", "Open 50%_", "", "u1", ["u1"], 6)
    engine.write_sync(db.create_flow, "closed", "channel", "Closed", "", "u1", ["u1"], 6,
                      None, True)
    assert engine.read_sync(db.join_rights, "closed", "u2") == (True, False)
    assert [f["uuid"] for f in engine.read_sync(db.visible_flows, "u2")] == ["open"]
    assert [f["uuid"] for f in engine.read_sync(db.visible_flows, "u1")] == ["open", "closed"]
    engine.write_sync(db.add_invite, "closed", "u2", "u1", 7)
    assert engine.read_sync(db.join_rights, "closed", "u2") == (True, True)
    assert [f["uuid"] for f in engine.read_sync(db.visible_flows, "u2")] == ["open", "closed"]
    flows, total = engine.read_sync(db.public_flows, "", 0, 10)
    assert [f["uuid"] for f in flows] == ["open"] and total == 1
    assert engine.read_sync(db.public_flows, "N 50%", 0, 10)[1] == 1  # any case, % literal
    assert engine.read_sync(db.public_flows, "n 5_%", 0, 10)[1] == 0
    assert engine.read_sync(db.public_flows, "", 1, 10) == ([], 1)
