"""code_digest: the hash a rule's params carry so that editing its library code reruns it."""

import pytest

from ssimsr import code_digest as cd


def test_every_stage_module_exists_and_digests_are_stable():
    for stage in cd.STAGE_MODULES:
        assert len(cd.code_digest(stage)) == 16
        assert cd.code_digest(stage) == cd.code_digest(stage)
    # stages that share no module have different digests
    assert cd.code_digest("tables") != cd.code_digest("train")


def test_unknown_stage_or_module_is_named():
    with pytest.raises(ValueError, match="unknown stage 'plots'"):
        cd.code_digest("plots")
    with pytest.raises(ValueError, match="no module ssimsr.nosuch"):
        cd.module_digest("nosuch")
