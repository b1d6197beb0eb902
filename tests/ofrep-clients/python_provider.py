"""openfeature-sdk + openfeature-provider-ofrep against a Tailor server.

Single-flag evaluation of every flag type (floats and integers included), reasons, errors,
contexts with no key and with nested attributes, both header forms and a wrong key. Run by
tests/integration/ofrep.rs: prints one JSON line per event, the last
`{"event": "done", "results": {...}}` (the protocol of common.mjs).
"""

import json
import os
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def settings():
    url = os.environ.get("OFREP_URL")
    key = os.environ.get("OFREP_KEY")
    if not url or not key:
        sys.exit("set OFREP_URL (the Tailor server) and OFREP_KEY (an SDK or client key)")
    return url, key


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def plain(details):
    """The parts of OpenFeature evaluation details the test compares."""

    def text(v):
        return None if v is None else getattr(v, "value", v)

    return {
        "value": details.value,
        "variant": details.variant,
        "reason": text(details.reason),
        "errorCode": text(details.error_code),
        "errorMessage": details.error_message,
        "flagMetadata": dict(details.flag_metadata or {}),
    }


def client(domain, url, headers, log):
    provider = OFREPProvider(url, headers_factory=lambda: headers)

    def record(response, *args, **kwargs):
        request = response.request
        log.append(
            {
                "url": request.path_url,
                "authorization": request.headers.get("Authorization"),
                "xApiKey": request.headers.get("X-API-Key"),
                "requestBody": (request.body or b"").decode(),
                "status": response.status_code,
                "contentType": response.headers.get("Content-Type"),
                "body": response.text,
            }
        )

    provider.session.hooks["response"].append(record)
    api.set_provider_and_wait(provider, domain)
    return api.get_client(domain)


def main():
    url, key = settings()
    log = []
    bearer = client("bearer", url, {"Authorization": f"Bearer {key}"}, log)
    api_key = client("x-api-key", url, {"X-API-Key": key}, log)
    wrong = client("wrong-key", url, {"Authorization": "Bearer tlr_sdk_not_a_key"}, log)

    pro = EvaluationContext(
        "user-1",
        {
            "plan": "pro",
            "address": {"city": "Oslo", "geo": {"lat": 59.9}},
            "scores": [1, 2],
            "tags": ["a", "b"],
        },
    )
    free = EvaluationContext("user-2", {"plan": "free"})
    anonymous = EvaluationContext(None, {"plan": "pro"})

    results = {
        "banner": plain(bearer.get_boolean_details("banner", False, pro)),
        "bannerFree": plain(bearer.get_boolean_details("banner", True, free)),
        "static": plain(bearer.get_boolean_details("static", True, pro)),
        "headline": plain(bearer.get_string_details("headline", "fallback", pro)),
        "limitFloat": plain(bearer.get_float_details("limit", -1.0, pro)),
        "limitInteger": plain(bearer.get_integer_details("limit", -1, pro)),
        "ratio": plain(bearer.get_float_details("ratio", -1.0, pro)),
        "theme": plain(bearer.get_object_details("theme", {}, pro)),
        "killed": plain(bearer.get_boolean_details("killed", True, pro)),
        "missing": plain(bearer.get_boolean_details("nope", True, pro)),
        "wrongType": plain(bearer.get_boolean_details("headline", True, pro)),
        "staticNoContext": plain(bearer.get_boolean_details("static", True)),
        "bannerNoKey": plain(bearer.get_boolean_details("banner", False, anonymous)),
        "headlineNoKey": plain(bearer.get_string_details("headline", "fallback", anonymous)),
        "xApiKey": plain(api_key.get_boolean_details("banner", False, pro)),
        "wrongKey": plain(wrong.get_boolean_details("static", True, pro)),
    }
    api.shutdown()
    emit("done", results=results, requests=log)


if __name__ == "__main__":
    main()
