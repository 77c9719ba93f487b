"""The pytest plugin's README claims, used as a client library's suite would use them: the
``streamchaos`` fixture's ``apply``, ``answers``, ``faults``, ``proxy``, and ``streamchaos_toxiproxy``."""

from __future__ import annotations

from tests.wire import h1_exchange, post
from tests.support import TOOLS, require

BODY = {"model": "m", "max_tokens": 2000, "stream": True, "messages": [{"role": "user", "content": "plugin\n@sc words=100"}]}


def text_of(result) -> str:
    return "".join(e.json()["delta"].get("text", "") for e in result.events() if e.name == "content_block_delta")


def test_apply_loads_a_library_scenario_and_faults_and_answers_say_what_happened(streamchaos):
    item = streamchaos.apply("fin_mid_body")  # FIN after 30 events on the first attempt
    assert item.name == "fin_mid_body"
    port = int(streamchaos.base_url().rsplit(":", 1)[1])
    first = h1_exchange("127.0.0.1", port, post("/v1/messages", BODY, key=streamchaos.key), until_complete=True)
    second = h1_exchange("127.0.0.1", port, post("/v1/messages", BODY, key=streamchaos.key), until_complete=True)
    assert first.ended == "eof" and len(first.events()) == 30  # cut: no last chunk
    assert second.ended == "complete"
    (fault,) = streamchaos.faults()
    assert fault["type"] == "fin" and fault["events_out"] == 30 and fault["rule"] == 0
    answers = streamchaos.answers()
    assert answers == [text_of(second)] * 2  # the same generated answer for both attempts
    assert text_of(first) and answers[0].startswith(text_of(first)) and text_of(first) != answers[0]


def test_proxy_puts_a_real_toxiproxy_in_front_of_the_simulator(streamchaos, streamchaos_toxiproxy):
    require(TOOLS / "bin" / "toxiproxy-server", "toxiproxy")
    proxy = streamchaos.proxy()
    through = h1_exchange("127.0.0.1", proxy.port, post("/v1/messages", BODY, key=streamchaos.key), until_complete=True)
    assert through.ended == "complete" and text_of(through) == streamchaos.answers()[-1]
    proxy.cut_after_bytes(2000)  # exactly 2000 bytes downstream, then RST
    cut = h1_exchange("127.0.0.1", proxy.port, post("/v1/messages", BODY, key=streamchaos.key), until_complete=True)
    assert cut.ended == "reset" and len(cut.head) + 4 + len(cut.body) == 2000
    assert [r["key"] for r in streamchaos.requests()] == [streamchaos.key] * 2
