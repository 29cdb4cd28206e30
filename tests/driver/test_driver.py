"""The driver against a real HTTP server: every op recorded with its fields, faults as outcomes."""
import asyncio


from sessionstorm.canary import find_canaries
from sessionstorm.driver import Driver, run_scenario
from sessionstorm.scenarios import ParallelObserve, SharedKey, StreamingSharedKey
from sessionstorm.history import HistoryWriter, iter_records
from sessionstorm.rundir import RunDir
from sessionstorm.workload import gateway, observe
from sessionstorm.profile import load_profile
from sessionstorm.stack.launch import attach


def write_profile(tmp_path, base_url, extra=""):
    p = tmp_path / "profile.toml"
    p.write_text(f"""
[target]
base_url = "{base_url}"
flavors = ["gateway", "observe"]
timeout_s = 5.0
[keys]
literal = ["sk-good"]
{extra}
""")
    return p


def _run(scenario, profile_path, tmp_path, **kw):
    target = attach(load_profile(profile_path))
    run_dir = RunDir.create(scenario.name, root=tmp_path / "reports")
    result = asyncio.run(run_scenario(scenario, target, run_dir, seed=7, **kw))
    records = list(iter_records(sorted(run_dir.history_dir.glob("*.jsonl"))))
    return result, [r for r in records if r["type"] == "op"], [r for r in records if r["type"] == "event"]


def test_shared_key_records_every_op_with_its_fields(server_url, tmp_path):
    result, ops, events = _run(SharedKey, write_profile(tmp_path, server_url), tmp_path, users=4, rounds=2)
    port = server_url.rsplit(":", 1)[1]
    assert result.ops == len(ops) == 8 and result.outcomes == {"ok": 8}
    assert len({op["id"] for op in ops}) == 8
    assert len({op["prompt_excerpt"] for op in ops}) == 8  # never one repeated prompt
    for op in ops:
        assert op["kind"] == "chat" and op["outcome"] == "ok" and op["status"] == 200
        assert op["canaries_seen"] == op["canaries_sent"]
        assert op["model_served"] == op["model_asked"] == "qwen3-235b"
        assert op["session_seen"] == "0x" + "ab" * 32
        assert op["request_id_seen"] == op["request_id_sent"] == op["id"]
        assert op["peer"] == f"127.0.0.1:{port}"
        assert op["server_id"].startswith("gateway-test-")
        assert op["key"].startswith("fp_") and "sk-good" not in str(op)
        assert 1 <= op["in_flight"] <= 4
        assert op["invoke_mono"] <= op["complete_mono"]
    assert max(op["in_flight"] for op in ops) == 4  # the burst really overlapped
    phases = [e["data"]["name"] for e in events if e["kind"] == "phase"]
    assert phases == ["start", "round-0", "round-1", "end"]
    assert result.scenario == "shared_key" and result.settings["users"] == 4


def test_streams_record_chunks_ttft_and_gaps(server_url, tmp_path):
    result, ops, _ = _run(StreamingSharedKey, write_profile(tmp_path, server_url), tmp_path, users=3, rounds=1)
    assert len(ops) == 3
    for op in ops:
        assert op["kind"] == "chat_stream" and op["outcome"] == "ok", op
        assert op["chunks"] == 4 and op["chunk_canaries"] == [op["canaries_sent"]] * 4
        assert op["canaries_seen"] == op["canaries_sent"]
        assert 0 < op["ttft"] < 5 and len(op["chunk_gaps"]) == 3 and all(g >= 0 for g in op["chunk_gaps"])
    # released together: every op was invoked before the first one completed
    assert max(op["invoke_mono"] for op in ops) < min(op["complete_mono"] for op in ops)


def test_timeout_is_an_info_outcome_not_an_exception(server_url, tmp_path):
    prof = write_profile(tmp_path, server_url, '[paths]\nchat = "/slow/v1/chat/completions"')
    target = attach(load_profile(prof, overrides={"target.timeout_s": "0.5"}))
    run_dir = RunDir.create("shared_key", root=tmp_path / "r")
    result = asyncio.run(run_scenario(SharedKey, target, run_dir, users=2, rounds=1))
    ops = [r for r in iter_records(run_dir.history_dir.glob("*.jsonl")) if r["type"] == "op"]
    assert result.outcomes == {"info": 2} and len(ops) == 2
    for op in ops:
        assert op["outcome"] == "info" and "Timeout" in op["error"] and op.get("status") is None
        assert 0.4 < op["complete_mono"] - op["invoke_mono"] < 5


def test_connection_refused_is_a_definite_fail(server_url, tmp_path):
    import portpicker
    target = attach(load_profile(write_profile(tmp_path, server_url)))
    target.url = f"http://127.0.0.1:{portpicker.pick_unused_port()}"  # nothing listens there

    async def go():
        with HistoryWriter(tmp_path / "h.jsonl") as h:
            async with Driver(target, h) as d:
                return await d.send(gateway.build_chat(target.profile, d.prompts, key="sk-good", model="m"))
    op = asyncio.run(go())
    assert op["outcome"] == "fail" and op["error"].startswith("ConnectError")


def test_parallel_observe_reads_back_what_was_written(server_url, tmp_path):
    result, ops, _ = _run(ParallelObserve, write_profile(tmp_path, server_url), tmp_path, users=3, observes=2)
    by_kind = {}
    for op in ops:
        by_kind.setdefault(op["kind"], []).append(op)
    assert [len(by_kind[k]) for k in ("create_session", "observe", "read_session")] == [3, 6, 3]
    for read in by_kind["read_session"]:
        written = [o["value"] for o in by_kind["observe"] if o["session_sent"] == read["session_sent"]]
        assert sorted(read["values"]) == sorted(written) and len(written) == 2


def test_not_found_keeps_the_services_error_code(server_url, tmp_path):
    target = attach(load_profile(write_profile(tmp_path, server_url)))

    async def go():
        with HistoryWriter(tmp_path / "h.jsonl") as h:
            async with Driver(target, h) as d:
                missing = await d.send(observe.build_observe(target.profile, d.prompts, "nope"))
                wrong_path = await d.send(observe.build_delete(target.profile, "nope"))
                bad_key = await d.send(gateway.build_chat(target.profile, d.prompts, key="sk-bad", model="m"))
                return missing, wrong_path, bad_key
    missing, wrong_path, bad_key = asyncio.run(go())
    assert (missing["status"], missing["outcome"], missing["error"]) == (404, "fail", "SESSION_NOT_FOUND")
    assert wrong_path["status"] == 405 and wrong_path["error"] != "SESSION_NOT_FOUND"
    assert (bad_key["status"], bad_key["error"]) == (401, "invalid_api_key")
    assert find_canaries(missing["prompt_excerpt"]) or missing["value"]
