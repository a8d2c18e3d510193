"""nbval settings for the tutorials: images and widget views are not compared byte for
byte (renderers differ; widget model ids are random); their text forms still are."""


def pytest_collectstart(collector):  # noqa: ANN001, ANN201 - pytest's hook signature
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("image/png", "application/vnd.jupyter.widget-view+json")
