"""A policy's hash must not change when Tether gains a setting: a stored session records the hash
of its policy, and resuming it loads the stored text and checks that it still has that hash."""

from tether.examples import example_policy_text
from tether.policy import Policy

TINY = """
tether: 1
name: t
tools:
  send:
    effect: write
    args:
      to: {type: string}
"""

# Hashes computed by Tether at commit e5903b3 (before plans, intent, readers, outflow, check-ins,
# principal budgets and lexical paths were added to the policy format).
EARLIER = {
    "tiny": "sha256:270782bf0f77e1a46773bf0dff5e85cf7f6c5211d4a1a683f4696fed1d014120",
    "weather": "sha256:48e3e66fad172019dfe87aa8672cce12f840b9af77b33b583ddaa7f8701c41cf",
}


def test_a_policy_written_before_new_settings_keeps_its_hash() -> None:
    assert Policy.from_yaml(TINY).hash == EARLIER["tiny"]
    assert Policy.from_yaml(example_policy_text("weather")).hash == EARLIER["weather"]


def test_a_setting_written_out_changes_the_hash() -> None:
    """Only an unset setting is left out: writing one (even at its default) is part of the policy."""
    stated = Policy.from_yaml(TINY + "readers: {outside: ask}\n").hash
    planned = Policy.from_yaml(TINY + "plans: {outside: deny}\n").hash
    assert len({stated, planned, EARLIER["tiny"]}) == 3
