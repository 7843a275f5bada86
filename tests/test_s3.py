"""S3 inputs and the S3 result store, against a real S3-compatible server (moto's standalone server,
a subprocess on 127.0.0.1) and a real `midiscribe serve`, as a client would use them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import mido
import pytest
from botocore.config import Config
from pydantic import ValidationError

from audiogen import encode, melody
from midiscribe.service.outside.fetch import FetchError
from midiscribe.service.outside.s3 import S3Store
from midiscribe.service.outside.s3_inputs import S3Inputs, S3Object, parse_location
from midiscribe.service.outside.webhooks import verify
from midiscribe.service.settings import Settings
from service_harness import Receiver, Service, moto_server, wait_until

API = "/api/public/v1/audio_to_midi"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
LIMIT = 3 * 1024 * 1024


def aws_env(endpoint: str) -> dict[str, str]:
    """What the service gets: the endpoint as a setting, credentials through the standard AWS chain."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MIDISCRIBE_S3_ENDPOINT_URL": endpoint,
        "MIDISCRIBE_S3_REGION": "us-east-1",
        "MIDISCRIBE_S3_ADDRESSING_STYLE": "path",
        "MIDISCRIBE_MAX_UPLOAD_BYTES": str(LIMIT),
    }


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def s3(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The test's own client, and the buckets: inputs, results, and one that denies every object action."""
    c = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}), **CREDENTIALS)
    tune = melody([(0.3, 0.5, 60), (0.9, 0.5, 64), (1.5, 0.5, 67), (2.1, 0.8, 72)], 3.0, sr=44_100)
    for bucket in ("inputs", "results", "denied"):
        c.create_bucket(Bucket=bucket)
    tmp = tmp_path_factory.mktemp("media")
    for kind in ("mp3", "flac"):
        c.upload_file(str(encode(tmp / f"tune.{kind}", tune, kind=kind)), "inputs", f"songs/tune.{kind}")
    c.put_object(Bucket="inputs", Key="big.wav", Body=b"\0" * (LIMIT + 1))
    c.put_object(Bucket="denied", Key="tune.mp3", Body=(tmp / "tune.mp3").read_bytes())
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::denied/*"}
    c.put_bucket_policy(Bucket="denied", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    return c


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, endpoint: str, s3: Any) -> Iterator[Service]:
    env = aws_env(endpoint) | {"MIDISCRIBE_STORE": "s3", "MIDISCRIBE_S3_BUCKET": "results"}
    svc = Service(tmp_path_factory.mktemp("svc-s3"), env=env).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def key(service: Service) -> tuple[str, str]:
    return service.create_key("s3")


def submit(service: Service, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(service.url + API, headers={"Authorization": key}, timeout=30, **kwargs)


def finished(service: Service, key: str, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = httpx.get(f"{service.url}/api/public/v1/tasks/{task_id}", headers={"Authorization": key}, timeout=10)
        body: dict[str, Any] = r.json()
        return body if body["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(done, timeout=120, interval=0.2, what=f"task {task_id}")
    return result


def pitches(url: str) -> set[int]:
    r = httpx.get(url)  # a plain GET: no API key, no AWS credentials
    assert r.status_code == 200, r.text
    midi = mido.MidiFile(file=io.BytesIO(r.content))
    return {m.note for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0}


def test_s3_submission_writes_results_to_the_bucket(
    service: Service, key: tuple[str, str], s3: Any, receiver: Receiver, endpoint: str
) -> None:
    api_key, secret = key
    body = {"audio_path": "s3://inputs/songs/tune.mp3", "webhook_url": f"{receiver.url}/s3"}
    r = submit(service, api_key, json=body)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    task = finished(service, api_key, task_id)
    assert task["status"] == "completed", task
    assert task["input"]["audio_path"] == "s3://inputs/songs/tune.mp3"

    listed = s3.list_objects_v2(Bucket="results", Prefix="AudioToMidi/")["Contents"]
    assert {o["Key"] for o in listed} >= {f"AudioToMidi/{task_id}.{ext}" for ext in ("mid", "wav", "csv", "npz")}
    (hook,) = wait_until(lambda: receiver.for_task(task_id), what="webhook")
    assert verify(secret, hook.headers, hook.body)
    payload = hook.json()
    assert payload["midi_file_path"].startswith(f"{endpoint}/results/AudioToMidi/{task_id}.mid?")
    assert {60, 64, 67, 72} <= pitches(payload["midi_file_path"])
    assert httpx.get(payload["sonify_file_path"]).content[:4] == b"RIFF"
    rows = list(csv.DictReader(io.StringIO(httpx.get(payload["notes_file_path"]).text)))
    assert {int(row["pitch_midi"]) for row in rows} >= {60, 64, 67, 72}
    assert {60, 64, 67, 72} <= pitches(task["result"]["midi_file_path"])  # the status response's links too
    assert httpx.get(task["result"]["model_outputs_path"]).status_code == 200


def test_path_style_url_and_upload_go_through_the_bucket(
    service: Service, key: tuple[str, str], s3: Any, endpoint: str
) -> None:
    by_url = submit(service, key[0], json={"audio_path": f"{endpoint}/inputs/songs/tune.flac", "sonify_midi": False})
    assert by_url.status_code == 200, by_url.text
    audio = s3.get_object(Bucket="inputs", Key="songs/tune.flac")["Body"].read()
    upload = submit(service, key[0], files={"audio_file": ("my tune.flac", audio)}, data={"sonify_midi": "false"})
    assert upload.status_code == 200, upload.text
    upload_id = upload.json()["task_id"]
    # The upload is in the bucket, so a worker on another machine could read it.
    assert s3.head_object(Bucket="results", Key=f"uploads/{upload_id}/my_tune.flac")["ContentLength"] == len(audio)
    for task_id in (by_url.json()["task_id"], upload_id):
        task = finished(service, key[0], task_id)
        assert task["status"] == "completed", task
        assert task["result"]["sonify_file_path"] == ""
        assert {60, 64, 67, 72} <= pitches(task["result"]["midi_file_path"])
    assert finished(service, key[0], by_url.json()["task_id"])["input"]["audio_path"] == "s3://inputs/songs/tune.flac"


@pytest.mark.parametrize(
    ("audio_path", "status", "code", "named"),
    [
        ("s3://inputs/songs/missing.wav", 404, "input_not_found", ["'inputs'", "'songs/missing.wav'"]),
        ("s3://no-such-bucket/tune.mp3", 404, "input_not_found", ["'no-such-bucket'", "tune.mp3"]),
        ("s3://denied/tune.mp3", 403, "access_denied", ["s3://denied/tune.mp3"]),
        ("s3://inputs", 400, "invalid_audio_path", []),
        ("s3://inputs/songs/", 400, "invalid_audio_path", []),
        ("s3://in/x.wav", 400, "invalid_audio_path", []),
        ("s3://inputs/big.wav", 413, "input_too_large", ["s3://inputs/big.wav"]),
    ],
)
def test_s3_errors_at_submit_time(
    service: Service, key: tuple[str, str], audio_path: str, status: int, code: str, named: list[str]
) -> None:
    r = submit(service, key[0], json={"audio_path": audio_path})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and all(part in error["message"] for part in named), error


def test_the_worker_checks_again(s3: Any, tmp_path: Path) -> None:
    inputs = S3Inputs(s3, max_bytes=LIMIT)
    for obj, status in ((S3Object("inputs", "gone.wav"), 404), (S3Object("denied", "tune.mp3"), 403)):
        with pytest.raises(FetchError) as err:
            inputs.download(obj, tmp_path / "in.wav")
        assert err.value.status == status
    assert not list(tmp_path.iterdir())
    assert inputs.download(S3Object("inputs", "songs/tune.flac"), tmp_path / "in.flac") > 1000


def test_public_links_and_multipart(s3: Any, endpoint: str, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="public")
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::public/Out/*"}
    s3.put_bucket_policy(Bucket="public", Policy=json.dumps({"Version": "2012-10-17", "Statement": [allow]}))
    store = S3Store(s3, "public", prefix="Out", url_mode="public", public_base_url=f"{endpoint}/public/")
    big = tmp_path / "big.wav"
    big.write_bytes(bytes(range(256)) * (17 * 4096))  # 17 MiB: over the multipart threshold
    key = store.result_key("t1", "wav")
    store.put_file(key, big)
    assert store.url(key) == f"{endpoint}/public/Out/t1.wav"
    assert store.head(key) == big.stat().st_size and store.head("Out/none.wav") is None
    with store.open(key) as stream:
        assert stream.read(512) == bytes(range(256)) * 2
    assert httpx.head(store.url(key)).headers["content-length"] == str(big.stat().st_size)
    assert store.put_stream("uploads/t1/a.wav", io.BytesIO(b"abc")) == 3
    assert "Signature=" in store.url("uploads/t1/a.wav")  # not under the public prefix: presigned


def test_local_results_with_s3_inputs(tmp_path: Path, endpoint: str, s3: Any) -> None:
    env = aws_env(endpoint) | {"MIDISCRIBE_S3_INPUTS": "true", "MIDISCRIBE_S3_INPUT_BUCKETS": "inputs"}
    svc = Service(tmp_path / "svc", env=env)
    api_key, _ = svc.create_key()
    svc.start()
    try:
        denied = submit(svc, api_key, json={"audio_path": "s3://denied/tune.mp3"})
        assert denied.status_code == 403 and "bucket 'denied'" in denied.json()["error"]["message"]
        r = submit(svc, api_key, json={"audio_path": "s3://inputs/songs/tune.flac", "sonify_midi": False})
        assert r.status_code == 200, r.text
        task = finished(svc, api_key, r.json()["task_id"])
        assert task["status"] == "completed", task
        assert task["result"]["midi_file_path"].startswith(f"{svc.url}/files/results/")
        assert {60, 64, 67, 72} <= pitches(task["result"]["midi_file_path"])
    finally:
        svc.stop()


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://b-1/a b/c.wav", ("b-1", "a b/c.wav")),
        ("S3://b.x/k%20.wav", ("b.x", "k%20.wav")),  # s3:// keys are taken as written
        ("https://my.bucket.s3.eu-west-1.amazonaws.com/a%20b.wav", ("my.bucket", "a b.wav")),
        ("https://bucket.s3.amazonaws.com/AudioToMidi/x.mid", ("bucket", "AudioToMidi/x.mid")),
        ("https://bucket.s3-us-west-2.amazonaws.com/x.wav", ("bucket", "x.wav")),
        ("https://s3.us-east-2.amazonaws.com/bucket/dir/x.wav", ("bucket", "dir/x.wav")),
        ("https://s3.amazonaws.com/bucket/x.wav", ("bucket", "x.wav")),
        ("https://minio.example.com:9000/bucket/x.wav", ("bucket", "x.wav")),
        ("https://bucket.minio.example.com:9000/x.wav", ("bucket", "x.wav")),
        ("https://bucket.s3.amazonaws.com/x.wav?X-Amz-Signature=abc", None),  # presigned: a plain URL
        ("https://example.com/bucket/x.wav", None),
        ("https://minio.example.com/bucket/x.wav", None),  # not the endpoint's port
    ],
)
def test_parse_location(location: str, expected: tuple[str, str] | None) -> None:
    found = parse_location(location, "https://minio.example.com:9000")
    assert (found and (found.bucket, found.key)) == expected


@pytest.mark.parametrize(
    "location", ["s3://", "s3://bucket", "s3://bucket/", "s3:///key", "s3://a/k", "https://s3.amazonaws.com/bucket"]
)
def test_parse_location_refuses_malformed(location: str) -> None:
    with pytest.raises(FetchError) as err:
        parse_location(location)
    assert err.value.status == 400 and err.value.code == "invalid_audio_path"


def test_settings_are_checked_at_start() -> None:
    with pytest.raises(ValidationError, match="S3_BUCKET is required"):
        Settings(store="s3")
    with pytest.raises(ValidationError, match="S3_PUBLIC_BASE_URL is required"):
        Settings(store="s3", s3_bucket="b", s3_url_mode="public")
    assert Settings(store="s3", s3_bucket="b", s3_prefix="/Out/").s3_prefix == "Out"
    assert Settings(store="s3", s3_bucket="b").s3_inputs_enabled and not Settings().s3_inputs_enabled
    assert Settings(s3_inputs=True, s3_input_buckets="a, b").s3_input_buckets == ["a", "b"]
