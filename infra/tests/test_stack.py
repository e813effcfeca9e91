"""The synthesized deployment: what it provisions, who may do what, and checkov's verdict.

Runs in the infrastructure environment (``.venv-infra``: CDK Terrain and checkov),
apart from the run-time one: ``make test`` runs it after the main suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cdktn import App
from cdktn import Testing as CdkTesting

from infra.main import archives
from infra.package import ROOT
from infra.stack import APIS, MemeGenStack, Sizing
from memegen.settings import Settings

CHECKOV_CONFIG = ROOT / "infra" / "checkov.yaml"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    built = archives(tmp_path_factory.mktemp("package"))
    app = CdkTesting.app()
    stack = MemeGenStack(app, "memegen", archives=built)
    return json.loads(CdkTesting.synth(stack))


def resources(tf: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return tf["resource"].get(kind, {})


def ref(kind: str, name: str, attribute: str) -> str:
    return "${" + f"{kind}.{name}.{attribute}" + "}"


def test_the_upload_trigger_fires_on_upload_for_new_objects_in_the_input_bucket_and_retries(synthesized):
    function = resources(synthesized, "google_cloudfunctions2_function")["on_upload"]
    trigger = function["event_trigger"]
    assert trigger["event_type"] == "google.cloud.storage.object.v1.finalized"
    assert trigger["event_filters"] == [{"attribute": "bucket", "value": ref("google_storage_bucket", "input", "name")}]
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert trigger["service_account_email"] == ref("google_service_account", "sa-trigger", "email")
    assert function["build_config"]["runtime"] == "python312"
    service = function["service_config"]
    assert service["max_instance_request_concurrency"] == 1
    assert service["max_instance_count"] == "${var.on_upload_max_instances}"
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert service["service_account_email"] == ref("google_service_account", "sa-on-upload", "email")


def test_the_storage_client_gives_up_before_the_api_is_cut_off():
    """Its retries end in time for the api to answer 503 before the platform's timeout ends the request."""
    assert Settings().storage_retry_seconds * 2 <= Sizing().api_timeout_s


def test_functions_read_only_settings_the_library_knows(synthesized):
    known = set(Settings.env_names())
    for name, function in resources(synthesized, "google_cloudfunctions2_function").items():
        env = function["service_config"]["environment_variables"]
        assert set(env) <= known, f"{name}: {set(env) - known}"
        assert env["MEMEGEN_UPLOAD_PREFIX"] == Settings().upload_prefix
        assert int(env["MEMEGEN_URL_TTL_SECONDS"]) <= 900
        assert env["MEMEGEN_MEME_RETENTION_DAYS"] == "${tostring(var.meme_retention_days)}"
        assert env["MEMEGEN_INPUT_BUCKET"] == "${var.name_prefix}-${var.project}-input"
        for bucket in ("input", "output"):  # no cycle through either bucket's CORS rule
            assert f"google_storage_bucket.{bucket}" not in json.dumps(function["service_config"])
    api_env = resources(synthesized, "google_cloudfunctions2_function")["api"]["service_config"][
        "environment_variables"
    ]
    assert api_env["MEMEGEN_SIGNING_SERVICE_ACCOUNT"] == ref("google_service_account", "sa-api", "email")


def test_buckets_are_private_uniform_and_expire_their_objects(synthesized):
    buckets = resources(synthesized, "google_storage_bucket")
    assert set(buckets) == {"input", "output", "source"}
    for bucket in buckets.values():
        assert bucket["public_access_prevention"] == "enforced"
        assert bucket["uniform_bucket_level_access"] is True
        assert bucket.get("force_destroy") in (None, False)
    assert buckets["input"]["lifecycle_rule"][0]["condition"]["age"] == 1
    assert buckets["input"]["versioning"]["enabled"] is False
    assert buckets["output"]["versioning"]["enabled"] is True
    ages = [rule["condition"].get("age") for rule in buckets["output"]["lifecycle_rule"]]
    assert "${var.meme_retention_days}" in ages
    cors = buckets["input"]["cors"]
    assert len(cors) == 1 and cors[0]["method"] == ["PUT"]
    # The browser may send every header the upload URL signs, the once-only precondition included.
    assert {"Content-Type", "x-goog-content-length-range", "x-goog-if-generation-match", "x-goog-meta-*"} <= set(
        cors[0]["response_header"]
    )
    # The page's origin: the run.app address (no path), never the cloudfunctions.net URL with one.
    assert "google_cloudfunctions2_function.api.service_config[0].uri" in cors[0]["origin"]
    assert "api.url" not in cors[0]["origin"]
    # The page reads the meme it shows, downloads and shares: GETs only, from the same origins.
    output_cors = buckets["output"]["cors"]
    assert len(output_cors) == 1 and output_cors[0]["method"] == ["GET", "HEAD"]
    assert output_cors[0]["origin"] == cors[0]["origin"]


def test_source_objects_are_named_by_content_hash(synthesized):
    objects = resources(synthesized, "google_storage_bucket_object")
    for function in ("on_upload", "api"):
        name = objects[f"{function}-source"]["name"]
        assert re.fullmatch(rf"{function}-[0-9a-f]{{16}}\.zip", name), name
        built = resources(synthesized, "google_cloudfunctions2_function")[function]
        assert built["build_config"]["source"]["storage_source"]["object"] == ref(
            "google_storage_bucket_object", f"{function}-source", "name"
        )


def test_identities_have_only_what_they_need(synthesized):
    everything = json.dumps(synthesized["resource"])
    assert "roles/editor" not in everything and "roles/owner" not in everything
    project_grants = resources(synthesized, "google_project_iam_member").values()
    assert {m["role"] for m in project_grants} == {
        "roles/eventarc.eventReceiver",
        "roles/logging.logWriter",
        "roles/artifactregistry.writer",
        "roles/pubsub.publisher",
        "roles/storage.objectViewer",
    }
    (viewer,) = [m for m in project_grants if m["role"] == "roles/storage.objectViewer"]
    # Project-wide object reads only under a condition: Cloud Functions' own source buckets.
    assert viewer["member"] == ref("google_service_account", "sa-build", "member")
    assert "gcf-v2-sources-" in viewer["condition"]["expression"]
    bucket_roles = {
        (m["bucket"], m["role"], m["member"])
        for m in resources(synthesized, "google_storage_bucket_iam_member").values()
    }
    bucket = {b: ref("google_storage_bucket", b, "name") for b in ("input", "output", "source")}
    deleter = ref("google_project_iam_custom_role", "object-deleter", "name")
    sa = {s: ref("google_service_account", f"sa-{s}", "member") for s in ("on-upload", "api", "trigger", "build")}
    assert bucket_roles == {
        (bucket["input"], "roles/storage.objectViewer", sa["on-upload"]),
        (bucket["output"], "roles/storage.objectViewer", sa["on-upload"]),
        (bucket["output"], "roles/storage.objectCreator", sa["on-upload"]),
        (bucket["input"], "roles/storage.objectCreator", sa["api"]),
        (bucket["output"], "roles/storage.objectViewer", sa["api"]),
        (bucket["output"], "roles/storage.objectCreator", sa["api"]),
        (bucket["source"], "roles/storage.objectViewer", sa["build"]),
        (bucket["input"], deleter, sa["api"]),
        (bucket["output"], deleter, sa["api"]),
        (bucket["output"], deleter, sa["on-upload"]),
    }
    # The deleter role deletes objects and does nothing else (no reads of people's photos).
    (role,) = resources(synthesized, "google_project_iam_custom_role").values()
    assert role["permissions"] == ["storage.objects.delete"]
    (token_creator,) = resources(synthesized, "google_service_account_iam_member").values()
    assert token_creator["role"] == "roles/iam.serviceAccountTokenCreator"
    assert token_creator["service_account_id"] == ref("google_service_account", "sa-api", "name")
    assert token_creator["member"] == sa["api"]
    invokers = resources(synthesized, "google_cloud_run_v2_service_iam_member")
    assert invokers["trigger-invokes-on-upload"]["member"] == sa["trigger"]
    assert invokers["api-public"]["member"] == "allUsers"
    assert invokers["api-public"]["count"] == "${var.public_page ? 1 : 0}"


def test_records_made_and_deleted_are_announced_on_a_topic(synthesized):
    (notification,) = resources(synthesized, "google_storage_notification").values()
    assert notification["bucket"] == ref("google_storage_bucket", "output", "name")
    assert notification["payload_format"] == "JSON_API_V1"
    # New records, and deleted ones (a versioned bucket archives the live one, then deletes it).
    assert notification["event_types"] == ["OBJECT_FINALIZE", "OBJECT_ARCHIVE", "OBJECT_DELETE"]
    assert notification["object_name_prefix"] == "records/"
    assert "events_topic" in synthesized["output"]


def test_apis_variables_and_outputs(synthesized):
    enabled = {s["service"] for s in resources(synthesized, "google_project_service").values()}
    assert enabled == set(APIS)
    variables = synthesized["variable"]
    for name, variable in variables.items():
        assert variable.get("description") and variable.get("type"), name
    for name in ("project", "region", "name_prefix", "max_upload_bytes", "meme_retention_days"):
        assert variables[name].get("validation"), f"{name} has no validation"
    assert set(synthesized["output"]) >= {"page_url", "input_bucket", "output_bucket", "events_topic"}
    assert synthesized["output"]["page_url"]["value"] == ref(
        "google_cloudfunctions2_function", "api", "service_config[0].uri"
    )


def test_archives_change_name_only_when_their_content_changes(tmp_path):
    first, again = archives(tmp_path / "a"), archives(tmp_path / "b")
    assert {f: p.name for f, p in first.items()} == {f: p.name for f, p in again.items()}
    assert first["on_upload"].read_bytes() == again["on_upload"].read_bytes()


def test_checkov_finds_nothing(tmp_path):
    app = App(outdir=str(tmp_path))
    MemeGenStack(app, "memegen", archives=archives(tmp_path / "package"))
    app.synth()
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("checkov")),
            "--file",
            str(tmp_path / "stacks" / "memegen" / "cdk.tf.json"),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 20


def test_every_skipped_check_says_why():
    lines = CHECKOV_CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if re.match(r"\s+- CKV_", line)]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} has no reason above it"


def test_storage_data_access_is_audited_unless_turned_off(synthesized):
    """Who read or wrote which object: the record bucket usage logs would keep (CKV_GCP_62 skipped for it)."""
    (audit,) = resources(synthesized, "google_project_iam_audit_config").values()
    assert audit["service"] == "storage.googleapis.com"
    assert {c["log_type"] for c in audit["audit_log_config"]} == {"DATA_READ", "DATA_WRITE"}
    assert audit["count"] == "${var.storage_audit_logs ? 1 : 0}"
