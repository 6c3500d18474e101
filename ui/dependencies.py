"""The panel's *Install dependencies* and *Diagnostics*: QGIS-side glue over ``core.setup.deps`` and
``core.setup.doctor`` (where the folder lives in the profile; the work as QgsTask callables)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog

LOG_TAG = "RS-SAGE install"


def deps_base() -> Path:
    """``<profile>/rs_sage/python``: the plugin's own package folder, per QGIS profile."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "rs_sage" / "python"


def activate_installed() -> bool:
    """Make packages installed by an earlier *Install dependencies* importable (plugin start)."""
    from ..core.setup.deps import activate

    return activate(deps_base())


def install_work(wheel_dir: str | None, gpu: bool):
    """A CoreTask work function: pip into the plugin's folder, log lines to the RS-SAGE install log."""

    def work(progress, cancelled):
        from ..core.setup.deps import install

        lines = [0]

        def log(line: str) -> None:
            lines[0] += 1
            progress(min(95.0, 100.0 * (1 - 0.97 ** lines[0])))  # pip prints no percentage
            QgsMessageLog.logMessage(line, LOG_TAG, Qgis.MessageLevel.Info)

        return install(deps_base(), wheel_dir=wheel_dir, gpu=gpu, log=log, cancelled=cancelled)

    return work


def diagnostics_work():
    def work(progress, cancelled):
        from ..core.setup.doctor import as_text, report

        return as_text(report(qgis_version=Qgis.QGIS_VERSION))

    return work


def models_url_override() -> str | None:
    """An organisation's mirror: the QGIS setting ``rs_sage/models_url`` (RS_SAGE_MODELS_URL also works)."""
    from qgis.core import QgsSettings

    value = QgsSettings().value("rs_sage/models_url", "")
    return str(value) if value else None


def qgis_proxy() -> str | None:
    """QGIS's own proxy (Settings > Options > Network) as a URL for the pack download."""
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    proxy = QgsNetworkAccessManager.instance().fallbackProxy()
    if proxy.type() not in (QNetworkProxy.ProxyType.HttpProxy, QNetworkProxy.ProxyType.HttpCachingProxy):
        return None
    auth = f"{proxy.user()}:{proxy.password()}@" if proxy.user() else ""
    return f"http://{auth}{proxy.hostName()}:{proxy.port()}"


def models_work(pack_file: str | None):
    """A CoreTask work function: install the model pack from a file, or download it (resumable)."""
    proxy, url = (None, None) if pack_file else (qgis_proxy(), models_url_override())

    def work(progress, cancelled):
        from pathlib import Path

        from ..core.setup.model_pack import PackInfo, install_file, install_url

        info = PackInfo.load()
        if pack_file:
            return install_file(Path(pack_file), info)
        return install_url(url, info, progress=lambda d, t: progress(100.0 * d / t) if t else None,
                           cancelled=cancelled, proxy=proxy)

    return work
