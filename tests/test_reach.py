"""swarm.shell.reach alone: which token Ray would send, and what one call to a head's GCS says.
(tests/test_jobs.py asks real heads; these are the rules, with no Ray.)"""

from __future__ import annotations

from pathlib import Path

from swarm.shell.reach import Answer, Token, classify, find_token, refusal, wants_token_mode

REFUSED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to "
           "connect to remote host: Connection refused")
DASHBOARD = ("failed to connect to all addresses; last error: INTERNAL: ipv4:127.0.0.1:8265: Failed "
             "parsing HTTP/2 (Expected SETTINGS frame as the first frame, got frame type 80) (Trying "
             "to connect an http1.x server)")


def test_the_token_is_looked_for_where_ray_looks_in_its_order(tmp_path: Path) -> None:
    home, named = tmp_path / "home", tmp_path / "token"
    assert find_token({}, home) is None
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 64)
    assert find_token({}, home) == Token(str(home / ".ray" / "auth_token"))
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(named)}, home) == Token(str(home / ".ray" / "auth_token"))
    named.write_text("b" * 64)
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(named)}, home) == Token(str(named))
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(named), "RAY_AUTH_TOKEN": "c"}, home) == Token("$RAY_AUTH_TOKEN")
    assert find_token({"RAY_AUTH_TOKEN": "  "}, tmp_path / "nobody") is None


def test_token_mode_is_asked_for_when_a_token_is_at_hand_and_the_user_chose_no_mode() -> None:
    token = Token("$RAY_AUTH_TOKEN")
    assert wants_token_mode({}, token)
    assert not wants_token_mode({}, None)
    assert not wants_token_mode({"RAY_AUTH_MODE": "disabled"}, token)  # the user's choice stands


def test_a_grpc_status_says_what_is_at_the_address() -> None:
    assert classify("OK", "") is Answer.OPEN
    assert classify("UNAUTHENTICATED", "InvalidAuthToken: Authentication token is missing or incorrect") \
        is Answer.WANTS_TOKEN
    assert classify("UNAVAILABLE", REFUSED) is Answer.SILENT
    assert classify("DEADLINE_EXCEEDED", "Deadline Exceeded") is Answer.SILENT
    assert classify("UNAVAILABLE", DASHBOARD) is Answer.NOT_A_HEAD
    assert classify("UNIMPLEMENTED", "Received http2 header with status: 404") is Answer.NOT_A_HEAD


def test_an_open_head_is_joined() -> None:
    assert refusal("h:6379", "OK", "", None, None) is None
    assert refusal("h:6379", "OK", "", Token("$RAY_AUTH_TOKEN"), "token") is None


def test_nothing_there_is_one_line_saying_what_to_check() -> None:
    assert refusal("h:1", "UNAVAILABLE", REFUSED, None, None) == (
        "no Ray head answers at h:1: connection refused; start one (`ray start --head`) or check "
        "--address: auto, or HOST:PORT with the head's GCS port (6379 by default)")
    assert refusal("h:1", "DEADLINE_EXCEEDED", "Deadline Exceeded", None, None) == (
        "no Ray head answers at h:1: no reply within 5 s; start one (`ray start --head`) or check "
        "--address: auto, or HOST:PORT with the head's GCS port (6379 by default)")


def test_the_dashboard_s_port_is_named_as_such() -> None:
    assert refusal("h:8265", "UNAVAILABLE", DASHBOARD, None, None) == (
        "h:8265 answers, but not as a Ray head's GCS: an HTTP/1 server, such as the dashboard; give "
        "the GCS port that `ray start --head` printed (6379 by default), not the dashboard's (8265)")


def test_a_head_that_wants_a_token_says_where_to_put_it_or_which_one_it_refused() -> None:
    wants = "InvalidAuthToken: Authentication token is missing or incorrect"
    assert refusal("h:6379", "UNAUTHENTICATED", wants, None, None) == (
        "the Ray head at h:6379 wants token authentication and none is here: put the cluster's token "
        "(`ray get-auth-token` on the head) in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, "
        "or in ~/.ray/auth_token")
    assert refusal("h:6379", "UNAUTHENTICATED", wants, Token("/t"), "token") == (
        "the Ray head at h:6379 refused the token from /t: it is not this cluster's; get the right "
        "one with `ray get-auth-token` on the head")
    assert refusal("h:6379", "UNAUTHENTICATED", wants, Token("/t"), "disabled") == (
        "the Ray head at h:6379 wants token authentication, but RAY_AUTH_MODE=disabled here: unset it "
        "(the token in /t is then used) or set RAY_AUTH_MODE=token")


def test_token_mode_without_a_token_is_refused_before_ray_raises_its_traceback() -> None:
    assert refusal("h:6379", "OK", "", None, "token") == (
        "RAY_AUTH_MODE=token but no token is here: put the cluster's token (`ray get-auth-token` on "
        "the head) in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")
