"""Drive the slice-linking inspector of ``notebooks/30_slice_linking.ipynb`` in a real browser.

Shared by ``tests/test_inspector_browser.py`` and ``benchmarks/inspector_screenshot.py``:
JupyterLab runs headless on 127.0.0.1 (random port and token) over a parameterised copy of
the notebook in a scratch folder, and Debian's Chromium (``/usr/bin/chromium``, never a
downloaded browser) is driven by Playwright to open it, run every cell, move the
inspector's sliders and take screenshots.

The notebook reads the profile's real artifacts (the trained models: a copy elsewhere would
not do, because a training run is identified by the absolute path of its source model, so
the linker would be trained again). It re-saves its linker there, as a pipeline run does;
:func:`jupyter_lab` backs that folder up first and puts it back byte for byte afterwards.
Its figures and metrics go to the scratch folder (``NEUROSEG_REPORTS``), and so do
JupyterLab's settings, workspaces, runtime files and kernel spec. The kernel is this
interpreter (``sys.executable``): the scratch folder's ``python3`` kernel spec, first on
JupyterLab's search path (``JUPYTER_PATH``), names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuroseg import paths

if TYPE_CHECKING:  # playwright is imported lazily so that this module imports without it
    from playwright.sync_api import Locator, Page

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "30_slice_linking"
CHROMIUM = Path(os.environ.get("NEUROSEG_CHROMIUM", "/usr/bin/chromium"))
# what notebook 30 reads from the artifacts of its profile (the outputs of 20 and of 30 itself)
NEEDED = ("splits", "models/em_boundary_unet", "models/slice_linker")
# what it writes there (see artifacts/<profile>/runs/30_slice_linking.outputs.json)
WRITTEN = ("models/slice_linker",)
VIEWPORT = {"width": 1400, "height": 1000}

_TABLE_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)
_TABLE_CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S)


def log(message: str) -> None:
    """Print a time-stamped progress line (shown by pytest with ``-s`` or on failure)."""
    print(f"[inspector {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# what is needed
# --------------------------------------------------------------------------------------------


def missing_browser() -> str | None:
    """Why the browser test cannot run here (Chromium or Playwright absent), else None."""
    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is not installed (it is in requirements.lock)"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium; .ci/run installs it)"
    return None


def artifacts_root() -> Path:
    """The artifacts root (``$NEUROSEG_ARTIFACTS`` or ``artifacts/``), without the profile."""
    return Path(os.environ.get("NEUROSEG_ARTIFACTS", REPO_ROOT / "artifacts"))


def missing_artifacts(profile: str) -> str | None:
    """Why notebook 30 cannot run on ``profile`` without training (missing outputs), else None."""
    root = artifacts_root() / profile
    absent = [part for part in NEEDED if not (root / part).exists()]
    if absent:
        return (
            f"{root} lacks {', '.join(absent)}; run `make reproduce PROFILE={profile}` first "
            f"(`make test` does it for the quick profile)"
        )
    return None


def missing_data() -> str | None:
    """Why the real data cannot be read (:func:`neuroseg.paths.data_root`'s error), else None."""

    try:
        paths.data_root()
    except paths.DataRootError as err:
        return str(err)
    return None


# --------------------------------------------------------------------------------------------
# the scratch folder and JupyterLab
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workdir:
    """A scratch folder laid out for one JupyterLab session over one notebook (30 by default)."""

    root: Path
    profile: str
    name: str = NOTEBOOK

    @property
    def lab(self) -> Path:
        """JupyterLab's root folder: holds the parameterised notebook only."""
        return self.root / "lab"

    @property
    def notebook(self) -> Path:
        """The parameterised copy of the notebook."""
        return self.lab / f"{self.name}.ipynb"

    @property
    def jupyter(self) -> Path:
        """JupyterLab's config, data (kernel spec) and runtime folders."""
        return self.root / "jupyter"

    @property
    def backup(self) -> Path:
        """Copies of the artifacts the notebook rewrites (restored after the session)."""
        return self.root / "backup"

    @property
    def reports(self) -> Path:
        """The kernel's ``NEUROSEG_REPORTS``."""
        return self.root / "reports"


def prepare(root: Path, profile: str) -> Workdir:
    """Lay out ``root``: the notebook with ``profile``'s parameters, Jupyter's folders.

    The notebook gets the pipeline's parameters of the profile
    (:func:`neuroseg.pipeline.notebook_parameters`) injected by papermill, which executes
    nothing.
    """
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    from neuroseg.pipeline import notebook_parameters

    reason = missing_artifacts(profile)
    if reason is not None:
        raise FileNotFoundError(reason)
    work = Workdir(Path(root).resolve(), profile)
    work.lab.mkdir(parents=True, exist_ok=True)
    nb = load_notebook_node(str(REPO_ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"))
    nb = parameterize_notebook(nb, notebook_parameters(NOTEBOOK, profile))
    write_ipynb(nb, str(work.notebook))
    jupyter_folders(work)
    return work


def jupyter_folders(work: Workdir) -> None:
    """The scratch folder's reports folder, kernel spec (this interpreter) and lab settings."""
    work.lab.mkdir(parents=True, exist_ok=True)
    work.reports.mkdir(parents=True, exist_ok=True)

    spec = work.jupyter / "data" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "Python 3 (neuroseg)",
        "language": "python",
        "metadata": {"debugger": False},
    }, indent=1))
    # no news toast ("Would you like to receive official Jupyter news?") over the notebook
    settings = work.jupyter / "config" / "lab" / "user-settings" / "@jupyterlab"
    settings = settings / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab server (see :func:`jupyter_lab`)."""

    url: str
    token: str
    process: subprocess.Popen
    log_file: Path
    env: dict[str, str] = field(repr=False)

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the server's REST API (JSON in and out)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=b"" if method != "GET" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - localhost
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str) -> str:
        """The URL that opens ``name`` (relative to the root folder) in JupyterLab."""
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""


def _lab_env(work: Workdir) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(work.jupyter / "config"),
        "JUPYTER_PATH": str(work.jupyter / "data"),  # first, before the venv's and the user's
        "JUPYTER_RUNTIME_DIR": str(work.jupyter / "runtime"),
        "IPYTHONDIR": str(work.jupyter / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "NEUROSEG_ARTIFACTS": str(artifacts_root().resolve()),
        "NEUROSEG_REPORTS": str(work.reports),
        "NEUROSEG_PROFILE": work.profile,
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("JUPYTER_DATA_DIR", None)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as in JupyterLab
    return env


def folder_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*")) if p.is_file()
    }


def _back_up(work: Workdir) -> None:
    source = artifacts_root() / work.profile
    shutil.rmtree(work.backup, ignore_errors=True)
    for part in WRITTEN:
        if (source / part).exists():  # a notebook that reads no artifacts has none to keep
            shutil.copytree(source / part, work.backup / part, symlinks=True)


def _restore(work: Workdir) -> None:
    """Put the backed-up artifacts back (files and modification times) if they changed."""
    target = artifacts_root() / work.profile
    for part in WRITTEN:
        saved, live = work.backup / part, target / part
        if not saved.is_dir():
            continue
        if live.is_dir() and folder_digest(live) == folder_digest(saved):
            continue
        shutil.rmtree(live, ignore_errors=True)
        shutil.copytree(saved, live, symlinks=True)  # copy2: contents and times
        log(f"restored {live}")


def _stop(process: subprocess.Popen, lab: Lab | None) -> None:
    """Stop the server and every process it started (kernels run in sessions of their own)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if lab is not None and process.poll() is None:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            lab.api("/api/shutdown", method="POST", timeout=5)  # shuts the kernels down too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def jupyter_lab(work: Workdir, *, timeout: float = 90.0) -> Iterator[Lab]:
    """Start JupyterLab on 127.0.0.1 over ``work.lab``; stop it (and its kernels) on exit.

    The artifacts the notebook rewrites (:data:`WRITTEN`) are backed up before and restored
    after the server and its kernels have stopped.
    """
    port, token = free_port(), secrets.token_urlsafe(24)
    env = _lab_env(work)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work.lab}",
        "--ServerApp.terminals_enabled=False", "--KernelSpecManager.ensure_native_kernel=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    log_file = work.root / "jupyterlab.log"
    started = time.perf_counter()
    _back_up(work)
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=work.lab, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, process, log_file, env)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}"
                )
            try:
                lab.api("/api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(
                        f"JupyterLab did not answer in {timeout:.0f} s:\n{lab.log_tail()}"
                    ) from None
                time.sleep(0.5)
        specs = lab.api("/api/kernelspecs")
        argv0 = specs["kernelspecs"]["python3"]["spec"]["argv"][0]
        if Path(argv0) != Path(sys.executable):
            raise RuntimeError(f"the python3 kernel runs {argv0}, not {sys.executable}")
        log(f"JupyterLab up on port {port} in {time.perf_counter() - started:.1f} s")
        yield lab
    finally:
        try:
            _stop(process, lab)
        finally:
            _restore(work)


# --------------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium_page(viewport: dict[str, int] | None = None) -> Iterator[Page]:
    """A page of headless Debian Chromium (Playwright never downloads a browser here)."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport=viewport or VIEWPORT, device_scale_factor=1)
            page = context.new_page()
            yield page
        finally:
            browser.close()


def _menu(page: Page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-item:visible", has_text=re.compile(rf"^{re.escape(item)}")).first.click()


def open_notebook(page: Page, lab: Lab, name: str, *, timeout: float = 90.0) -> None:
    """Open ``name`` in JupyterLab and wait for an idle kernel."""
    started = time.perf_counter()
    page.goto(lab.notebook_url(name), timeout=timeout * 1000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=timeout * 1000)
    wait_idle(page, timeout=timeout)
    log(f"notebook open, kernel idle in {time.perf_counter() - started:.1f} s")


def kernel_status(page: Page) -> str:
    """The kernel's status as the status bar shows it (``"idle"``, ``"busy"``, ...; ``""``
    while no kernel is connected)."""
    return page.evaluate(
        """() => {
            const el = document.querySelector('.jp-StatusBar-TextItem[title^="Change kernel for"]');
            const text = el ? el.textContent : '';
            const cut = text.lastIndexOf('|');
            return cut < 0 ? '' : text.slice(cut + 1).trim().toLowerCase();
        }"""
    )


def wait_idle(page: Page, *, timeout: float = 60.0) -> None:
    """Wait until a kernel is connected and idle."""
    deadline = time.perf_counter() + timeout
    while kernel_status(page) != "idle":
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no idle kernel after {timeout:.0f} s ({kernel_status(page)!r})")
        time.sleep(0.25)


def _errors(page: Page) -> list[str]:
    return page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_text_contents()


def run_all(page: Page, *, timeout: float = 600.0) -> float:
    """Run every cell (menu Run > Run All Cells); wait until all ran. Returns the seconds."""
    started = time.perf_counter()
    _menu(page, "Run", "Run All Cells")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    n = cells.count()
    deadline = started + timeout
    while True:
        # textContent: cells scrolled out of view are not rendered, so innerText is empty there
        prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_text_contents()
        numbered = len(prompts) == n and all(re.search(r"\[\d+\]", p) for p in prompts)
        idle = kernel_status(page) == "idle"
        if numbered and idle:
            break
        if idle and not any("*" in p for p in prompts) and time.perf_counter() - started > 5:
            # Run All stops at an error and clears the prompts of the cells after it
            errors = [e for e in _errors(page) if "Error" in e or "Traceback" in e]
            raise RuntimeError(
                "the notebook stopped before its last cell:\n"
                + (errors[-1][-3000:] if errors else f"prompts {prompts}")
            )
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the notebook did not finish in {timeout:.0f} s: {prompts}")
        time.sleep(1.0)
    seconds = time.perf_counter() - started
    log(f"ran {n} code cells in {seconds:.1f} s")
    return seconds


# --------------------------------------------------------------------------------------------
# the inspector
# --------------------------------------------------------------------------------------------


def inspector(page: Page) -> Locator:
    """The inspector's widget (the output holding the z and threshold sliders)."""
    return page.locator(".jp-OutputArea-output").filter(
        has=page.locator(".widget-slider", has_text="threshold")
    ).first


def slider(page: Page, description: str) -> Locator:
    """The inspector's slider labelled ``description`` (``"z"`` or ``"threshold"``)."""
    label = re.compile(rf"^\s*{re.escape(description)}\s*$")
    return inspector(page).locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=label)
    ).first


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of an HTML table (as pandas ``to_html`` writes it) as header-to-text dicts.

    >>> parse_table("<table><tr><th>a</th></tr><tr><td>1</td></tr></table>")
    [{'a': '1'}]
    """
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in _TABLE_CELL.findall(r)]
            for r in _TABLE_ROW.findall(text)]
    if not rows:
        return []
    return [dict(zip(rows[0], r)) for r in rows[1:]]


@dataclass(frozen=True)
class InspectorState:
    """What the browser shows of the inspector."""

    z: str
    threshold: str
    left_src: str
    right_src: str
    left_sha: str
    right_sha: str
    info: str
    table_html: str

    @property
    def rows(self) -> list[dict[str, str]]:
        """The link table's rows (column name to the shown text)."""
        return parse_table(self.table_html)


def read_state(page: Page) -> InspectorState:
    """Read the sliders' readouts, both pictures (blob bytes hashed) and the texts."""
    data = inspector(page).evaluate(
        """async (root) => {
            const text = (el) => el ? el.innerText.trim() : '';
            const sliders = {};
            for (const s of root.querySelectorAll('.widget-slider')) {
                const label = text(s.querySelector('.widget-label'));
                sliders[label] = text(s.querySelector('.widget-readout'));
            }
            const imgs = [...root.querySelectorAll('img')];
            const digest = async (img) => {
                const buf = await (await fetch(img.src)).arrayBuffer();
                const hash = await crypto.subtle.digest('SHA-256', buf);
                return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
            };
            const html = [...root.querySelectorAll('.widget-html-content')];
            const table = html.find(h => h.querySelector('table'));
            const info = html.find(h => !h.querySelector('table'));
            return {
                sliders, srcs: imgs.map(i => i.src), shas: await Promise.all(imgs.map(digest)),
                info: text(info), table: table ? table.innerHTML : '',
            };
        }"""
    )
    if len(data["srcs"]) != 2:
        raise AssertionError(f"expected two pictures in the inspector, found {len(data['srcs'])}")
    return InspectorState(
        z=data["sliders"].get("z", ""), threshold=data["sliders"].get("threshold", ""),
        left_src=data["srcs"][0], right_src=data["srcs"][1],
        left_sha=data["shas"][0], right_sha=data["shas"][1],
        info=data["info"], table_html=data["table"],
    )


def _consistent(state: InspectorState) -> bool:
    """The info line names the slices and the threshold the sliders show."""
    try:
        z, threshold = int(state.z), float(state.threshold)
    except ValueError:
        return False
    return f"slices {z} | {z + 1}:" in state.info and f"at threshold {threshold:.2f}" in state.info


def settled_state(page: Page, *, timeout: float = 60.0) -> InspectorState:
    """Wait until the kernel has answered the sliders' values, then read the inspector.

    The kernel writes the pictures, then the info line (naming z and the threshold), then the
    table; the state is read once the info line matches the readouts, the kernel is idle and
    two reads agree.
    """
    deadline = time.perf_counter() + timeout
    last: InspectorState | None = None
    while True:
        state = read_state(page)
        if _consistent(state) and kernel_status(page) == "idle" and state == last:
            return state
        last = state
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the inspector did not settle in {timeout:.0f} s: {state}")
        time.sleep(0.3)


def press_slider(page: Page, description: str, key: str, times: int = 1) -> InspectorState:
    """Focus a slider's handle, press ``key`` ``times`` times; return the settled state."""
    handle = slider(page, description).locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(times):
        handle.press(key)
    return settled_state(page)


def screenshot(page: Page, path: Path) -> Path:
    """Save a PNG of the inspector's output area at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widget = inspector(page)
    widget.scroll_into_view_if_needed()
    box = widget.bounding_box()
    size = page.viewport_size
    if box is not None and size is not None and box["height"] + 300 > size["height"]:
        # the notebook scrolls inside the page: a widget taller than the view would be cut
        page.set_viewport_size({"width": size["width"], "height": int(box["height"]) + 300})
        widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(path), animations="disabled")
    log(f"screenshot {path} ({hashlib.sha256(path.read_bytes()).hexdigest()[:12]})")
    return path
