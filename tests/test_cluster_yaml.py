"""cluster.yaml is a file `ray up` accepts: Ray's own schema, and the local provider's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
TEXT = (ROOT / "cluster.yaml").read_text()


def test_cluster_yaml_matches_rays_schema() -> None:
    jsonschema.validate(yaml.safe_load(TEXT), SCHEMA)


def test_the_on_premise_file_gives_no_node_types_which_the_local_provider_refuses() -> None:
    config = yaml.safe_load(TEXT)
    assert config["provider"]["type"] == "local"
    assert "available_node_types" not in config and "head_node_type" not in config
    assert config["max_workers"] == len(config["provider"]["worker_ips"])


def test_every_node_starts_ray_with_token_authentication() -> None:
    config = yaml.safe_load(TEXT)
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"]
              if " start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "~/.ray/auth_token" in config["file_mounts"]


def test_the_commented_cloud_variant_matches_rays_schema_too() -> None:
    block = re.search(r"# BEGIN CLOUD\n(.*?)# END CLOUD", TEXT, re.S).group(1)
    cloud = yaml.safe_load("\n".join(line.removeprefix("# ") for line in block.splitlines()))
    config = {**yaml.safe_load(TEXT), **cloud}
    jsonschema.validate(config, SCHEMA)
    assert config["available_node_types"]["gpu"]["resources"]["GPU"] == 1


def test_a_broken_file_is_refused_by_the_same_check() -> None:
    config = yaml.safe_load(TEXT)
    del config["provider"]
    with pytest.raises(jsonschema.ValidationError, match="provider"):
        jsonschema.validate(config, SCHEMA)


def test_the_head_starts_in_the_checkout_and_lets_a_stopped_job_finish_its_longest_trial() -> None:
    config = yaml.safe_load(TEXT)
    [start] = [c for c in config["head_start_ray_commands"] if " start" in c]
    assert "cd ~/autoresearch-swarm &&" in start  # submitted jobs start there (README's commands)
    wait_s = int(re.search(r"RAY_JOB_STOP_WAIT_TIME_S=(\d+)", start).group(1))
    longest = max(yaml.safe_load(p.read_text())["target"].get("timeout_s", 0)
                  for p in (ROOT / "configs").glob("*.yaml"))
    assert wait_s > longest, (wait_s, longest)
    # the project as pyproject.toml declares it (ray[default]: the Jobs API), with ml_target's extra
    assert any("pip install -q -e '.[ml]'" in c for c in config["setup_commands"])
