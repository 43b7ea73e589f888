import pytest

from tracer import prefilter


@pytest.fixture(params=["python-loop", "quick-loop"])
def loop(request, tmp_path_factory, monkeypatch):
    """Run a tracer test with the Python loop alone, and with the quick loop in front
    of it (tracer/quickloop.py): the runners read QUICK_DIR."""
    if request.param == "quick-loop":
        try:
            from tracer import quickloop
            directory = tmp_path_factory.getbasetemp() / "quickloop"
            quickloop.load(directory)
        except prefilter.PrefilterUnavailable as exc:
            pytest.skip(str(exc))
        monkeypatch.setenv("QUICK_DIR", str(directory))
    else:
        monkeypatch.delenv("QUICK_DIR", raising=False)
    return request.param
