"""Copy results.md into README.md between the RESULTS markers (run after summarize.py)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
readme = (HERE / "README.md").read_text()
table = (HERE / "results.md").read_text().strip()
start, end = "<!-- RESULTS START -->", "<!-- RESULTS END -->"
if "RESULTS_TABLE" in readme:
    readme = readme.replace("RESULTS_TABLE", f"{start}\n{table}\n{end}")
else:
    a, b = readme.index(start), readme.index(end) + len(end)
    readme = readme[:a] + f"{start}\n{table}\n{end}" + readme[b:]
(HERE / "README.md").write_text(readme)
