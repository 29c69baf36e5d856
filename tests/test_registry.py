import pytest

from benchmark import create_model, get_variant, list_variants
from benchmark.registry import Registry, Variant
from benchmark.models import Bicubic


def test_names_and_wildcards():
    names = list_variants()
    for n in ("awsrn-s", "awsrn-sd", "awsrn-m", "awsrn-l", "awsrn", "awsrn-s-bam", "awsrn-s-awms35", "bicubic"):
        assert n in names
    assert list_variants("awsrn-s-awms*") == [
        "awsrn-s-awms3", "awsrn-s-awms5", "awsrn-s-awms7", "awsrn-s-awms9", "awsrn-s-awms35", "awsrn-s-awms37",
        "awsrn-s-awms39", "awsrn-s-awms57", "awsrn-s-awms59", "awsrn-s-awms79", "awsrn-s-awms357",
        "awsrn-s-awms359", "awsrn-s-awms379", "awsrn-s-awms579"]
    assert list_variants("*-bam") == ["awsrn-l-bam", "awsrn-m-bam", "awsrn-s-bam", "awsrn-sd-bam"]
    assert get_variant("awsrn") is get_variant("awsrn-l")


def test_register_twice_raises():
    reg = Registry()
    reg.register(Variant("x", None, None, "x"))
    with pytest.raises(KeyError, match="already registered"):
        reg.register(Variant("x", None, None, "again"))


def test_unknown_name_error_suggests():
    with pytest.raises(KeyError, match="unknown model 'awsrn-xl'"):
        create_model("awsrn-xl")


def test_overrides_replace_config_fields():
    m = create_model("awsrn-s", scale=3, n_lfb=2, awms_kernels=(3,), bam=None)
    assert m.cfg.n_lfb == 2 and m.cfg.awms_kernels == (3,) and m.cfg.scale == 3 and not m.cfg.bam


def test_an_unknown_override_names_the_key_and_the_fields():
    """A recipe key given to --set (e.g. amp, which is train's --amp) is one line, not a TypeError traceback."""
    with pytest.raises(ValueError, match=r"override 'amp' \(--set amp=...\): not a field of awsrn-s's config; "
                                         r"expected one of n_lfb, n_awru, .*, rgb_mean$"):
        create_model("awsrn-s", scale=4, amp="bf16")


def test_bicubic_is_a_model_without_weights():
    assert isinstance(create_model("bicubic", scale=4), Bicubic)
    with pytest.raises(ValueError, match="takes no weights"):
        create_model("bicubic", scale=2, weights="x.pt")


def test_paper_numbers_attached():
    assert get_variant("awsrn-s").paper(2)["set5_psnr"] == 37.75
    assert get_variant("awsrn").paper(8)["params_k"] == 2348
    assert get_variant("awsrn-s").paper(8) is None
    sd3 = get_variant("awsrn-sd").paper(3)
    assert sd3["set14_psnr"] == 32.21 and "typo" in sd3["note"]
