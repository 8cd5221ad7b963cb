"""The CMS/CME tables: meanings in the spec's words, temporary vs permanent, CMEE=2 texts."""

from __future__ import annotations

import pytest

from gsmgw.at.errors import (
    CME_ERRORS,
    CMS_ERRORS,
    CmeError,
    CmsError,
    cme_code_from_text,
    cme_info,
    cms_code_from_text,
    cms_info,
)


@pytest.mark.parametrize("code", [38, 41, 42, 47, 17, 22, 27, 192, 314, 322, 331, 332, 500])
def test_temporary_cms_codes(code):
    assert cms_info(code).temporary


@pytest.mark.parametrize("code", [1, 21, 28, 29, 30, *range(96, 112), 195, 196, 304])
def test_permanent_cms_codes(code):
    assert not cms_info(code).temporary


def test_unlisted_rp_cause_is_treated_as_temporary_failure():
    # TS 24.011 Table 8.4: unlisted cause values are treated as 41.
    info = cms_info(60)
    assert info.temporary and "temporary failure" in info.meaning


def test_sim_specific_errors_are_marked():
    for code in (8, 10, 50, 193, 310, 311, 316, 330):
        assert cms_info(code).sim_specific, code
    assert not cms_info(1).sim_specific


def test_every_table_entry_has_a_meaning():
    assert all(i.meaning for i in CMS_ERRORS.values())
    assert all(i.meaning for i in CME_ERRORS.values())
    assert len(CMS_ERRORS) > 60 and len(CME_ERRORS) > 50


@pytest.mark.parametrize(
    "text,code",
    [("Invalid memory index", 321), ("(U)SIM not inserted", 310), ("SIM not inserted", 310),
     ("SMSC address unknown", 330), ("memory full", 322), ("unknown error", 500)],
)
def test_cms_text_forms(text, code):
    assert cms_code_from_text(text) == code


@pytest.mark.parametrize(
    "text,code",
    [("SIM PIN required", 11), ("SIM PUK required", 12), ("incorrect password", 16),
     ("SIM not inserted", 10), ("operation not allowed", 3), ("SIM busy", 14)],
)
def test_cme_text_forms(text, code):
    assert cme_code_from_text(text) == code


def test_exception_carries_code_meaning_and_class():
    exc = CmsError(38, command="AT+CMGS=20")
    assert (exc.code, exc.meaning, exc.temporary) == (38, "network out of order", True)
    assert "+CMS ERROR 38: network out of order" in str(exc)
    exc = CmeError(16)
    assert not exc.temporary and exc.meaning == "incorrect password"
    assert cme_info(None, "odd").meaning == "odd"
