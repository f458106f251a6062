"""The dynamic mode's order of writes and pushes: state.txt is written before any apply
that may reload nginx (a reload loads it), and after the push when the generation that
serves stays (the change needs the push alone; at 100k Ingresses state.txt's encoding
would delay it by about half a second).

nginx and its control endpoint are recorders here, as in test_controller.py; the route
table's traffic tests run the real ones.
"""

from agentlab import ingress, rule
from edgeagent.apply import ApplyResult, Outcome
from edgeagent.cache import Cache
from test_controller import dynamic_controller, namespaced

from edgeagent import render


class Steps:
    """The applier and the control endpoint, writing what they are asked into one list."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, frozenset[str]]] = []
        self.serving: str | None = None

    def apply(self, rendered: render.Rendered) -> ApplyResult:
        if rendered.generation == self.serving:
            self.steps.append(("unchanged", frozenset()))
            return ApplyResult(Outcome.UNCHANGED, rendered.generation)
        self.serving = rendered.generation
        self.steps.append(("reload", frozenset()))
        return ApplyResult(Outcome.APPLIED, rendered.generation)

    def write_certificates(self, state) -> None:
        pass

    def write_state(self, state) -> int:
        self.steps.append(("state.txt", frozenset(state.routes)))
        return 1

    def push(self, state, full: bool) -> int:
        self.steps.append(("full push" if full else "push", frozenset(state.routes)))
        return 1

    def remove_certificates_except(self, state) -> None:
        pass


def test_state_txt_is_written_before_a_reload_and_after_a_push_alone(tmp_path):
    cache, steps = Cache(), Steps()
    plain = namespaced(ingress("web", [rule("web.example.com", "web")]))
    running = dynamic_controller(tmp_path, cache, [plain], ["web", "shop"], steps, steps)
    web = frozenset(["web.example.com"])
    running.sync()
    assert steps.steps == [("state.txt", web), ("reload", frozenset()), ("full push", web)]

    # A plain Ingress: a route table host, the same generation.
    steps.steps.clear()
    cache.upsert("ingresses", namespaced(ingress("shop", [rule("shop.example.com", "shop")])))
    running.sync()
    both = web | {"shop.example.com"}
    assert steps.steps == [
        ("unchanged", frozenset()),
        ("push", frozenset(["shop.example.com"])),
        ("state.txt", both),
    ]

    # An annotation gives web a server block of its own: a new generation, a reload.
    steps.steps.clear()
    annotations = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}
    cache.upsert(
        "ingresses", {**plain, "metadata": {**plain["metadata"], "annotations": annotations}}
    )
    running.sync()
    shop = frozenset(["shop.example.com"])
    assert steps.steps == [("state.txt", shop), ("reload", frozenset()), ("full push", shop)]
