"""The public API is exactly what __all__ says (compare httpx's test of the same name)."""

import tether


def test_all_exports_exist() -> None:
    for name in tether.__all__:
        assert hasattr(tether, name), name


def test_public_api_is_pinned() -> None:
    assert sorted(tether.__all__) == sorted(
        [
            "TRUSTED",
            "UNTRUSTED",
            "ApprovalRequest",
            "ApprovalRequired",
            "Approver",
            "AsyncApprover",
            "ConfigError",
            "Decision",
            "Detector",
            "EventStore",
            "Finding",
            "Gate",
            "Guard",
            "Label",
            "Outcome",
            "Policy",
            "PolicyError",
            "Reason",
            "SQLiteStore",
            "Session",
            "SessionError",
            "StaleSession",
            "StaticApprover",
            "StoreApprover",
            "StoreError",
            "TetherError",
            "ToolCall",
            "ToolDenied",
            "Verdict",
            "__version__",
            "guarded",
            "label",
        ]
    )
