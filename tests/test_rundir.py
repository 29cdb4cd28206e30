import os

from sessionstorm.rundir import RunDir


def test_create_points_latest_and_never_overwrites(tmp_path):
    a = RunDir.create("shared_key", root=tmp_path)
    b = RunDir.create("shared_key", root=tmp_path)
    assert a.path != b.path and a.history_dir.is_dir() and b.history_dir.is_dir()
    assert (tmp_path / "latest").resolve() == b.path.resolve()
    assert (tmp_path / "shared_key" / "latest").resolve() == b.path.resolve()
    assert not os.path.isabs(os.readlink(tmp_path / "latest"))


def test_json_round_trip(tmp_path):
    run = RunDir.create("x", root=tmp_path)
    run.write_json("results.json", {"valid": True, "anomalies": []})
    assert run.read_json("results.json") == {"valid": True, "anomalies": []}
    assert not list(run.path.glob("*.tmp"))
