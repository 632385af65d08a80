"""The realistic planner: the task's write tools, with only the values its prompt (and trusted reads) spell out."""

from pathlib import Path

import pytest

from tether import Policy
from tether.bench._episodes import BenchContext, load_policies
from tether.bench._metrics import summarize
from tether.bench._planner import RealisticPlanner
from tether.bench._runner import episode_specs, run
from tether.bench._scripted import Step

POLICIES = Path(__file__).resolve().parents[2] / "src" / "tether" / "adapters" / "agentdojo" / "policies"

POLICY = Policy.from_yaml(
    """
tether: 1
name: planner
tools:
  get_balance: {effect: read, output: trusted}
  read_file: {effect: read, output: untrusted, args: {name: {type: string}}}
  list_friends:
    effect: read
    output: trusted
    labels: [{when: {arg: everyone, equals: true}, integrity: untrusted}]
    args: {everyone: {type: [boolean, "null"]}}
  send_money:
    effect: write
    output: trusted
    args:
      recipient: {type: string}
      amount: {type: number}
      subject: {type: string}
      recurring: {type: [boolean, "null"]}
      tags: {type: [array, "null"], items: {type: string}}
"""
)


def test_it_names_only_values_the_prompt_or_a_trusted_read_spells_out() -> None:
    prompt = "Pay 1,250 to GB29NWBK60161331926819 for the rent, tagged home and rent."
    payment = {
        "recipient": "GB29NWBK60161331926819",
        "amount": 1250.0,
        "subject": "Rent for May",
        "recurring": False,
        "tags": ["home", "rent"],
    }
    planner = RealisticPlanner(POLICY, prompt, [("get_balance", {}), ("send_money", payment), ("read_file", {"name": "x"})])
    assert planner.plan([]) == [
        {"tool": "send_money", "args": {"recipient": "GB29NWBK60161331926819", "amount": 1250.0, "tags": ["home", "rent"]}}
    ]
    # a value read in a trusted output before planning counts; booleans and composed text stay open
    assert planner.plan(["subject: Rent for May"])[0]["args"]["subject"] == "Rent for May"
    other = RealisticPlanner(POLICY, "Pay my landlord what the bill says.", [("send_money", {"recipient": "GB29", "amount": 12.5})])
    assert other.plan([]) == [{"tool": "send_money", "args": {}}]
    assert RealisticPlanner(POLICY, "pay 125 to bob", [("send_money", {"recipient": "bob", "amount": 12.5})]).plan([]) == [
        {"tool": "send_money", "args": {"recipient": "bob"}}  # 12.5 is no whole number in "125"
    ]


def test_it_plans_before_the_first_step_that_may_read_untrusted_data() -> None:
    planner = RealisticPlanner(POLICY, "x", [])
    assert not planner.due(Step("get_balance", {}))
    assert not planner.due(Step("send_money", {}))  # a write whose output is trusted reads nothing untrusted
    assert planner.due(Step("read_file", {"name": "a"}))
    assert planner.due(Step("list_friends", {}))  # a labels rule may make its output untrusted
    assert planner.due(Step("unknown_tool", {}))


@pytest.fixture(scope="module")
def banking() -> list:
    """Banking's first six user tasks with every injection, with the realistic and the perfect planner."""
    ctx = BenchContext(load_policies(POLICIES, ["banking"]))
    tasks = {f"user_task_{i}" for i in range(6)}
    specs = [s for s in episode_specs(["banking"], scopes=(False,), baseline=False, plans=("perfect", "realistic")) if s.user_task in tasks]
    results, _ = run(specs, ctx)
    return results


def test_realistic_plans_keep_asr_at_zero_and_cost_what_they_cannot_know(banking: list) -> None:
    realistic = summarize(banking, scoped=False, unreachable=set(), plans="realistic")["overall"]
    perfect = summarize(banking, scoped=False, unreachable=set(), plans="perfect")["overall"]
    assert sorted(realistic) == sorted(perfect)
    assert realistic["asr_tool_reachable"]["autonomous"] == 0.0 and realistic["asr_tool_reachable"]["careful_human"] == 0.0
    assert realistic["plan_verdicts"] == {"allow": 6, "ask": 0, "deny": 0}  # declared before anything untrusted was read
    # a bill's IBAN, a refund's amount: values only a read could give; the flow rules ask for them
    assert realistic["benign_utility"]["autonomous"] < perfect["benign_utility"]["autonomous"] == 1.0
    assert realistic["benign_utility"]["careful_human"] == 1.0 and realistic["asks_per_task"]["careful_human"] > 0
    assert not any(r.error for r in banking)
