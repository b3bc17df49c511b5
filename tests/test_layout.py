"""The package's shape: imports run one way (no circle), and functions and modules stay small.

``python -m pytest tests/test_layout.py`` is the check; it reads the source, imports nothing.
Imports inside functions (lazy, for start-up time) and under ``TYPE_CHECKING`` do not count:
only module-level imports run when a module loads.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "voxlm"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(tree: ast.Module) -> set[str]:
    """voxlm modules imported at module level, outside ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("voxlm"):
                names.add(sub.module)
                names.update(f"{sub.module}.{alias.name}" for alias in sub.names)
            elif isinstance(sub, ast.Import):
                names.update(a.name for a in sub.names if a.name.startswith("voxlm"))
    return names


def import_graph() -> dict[str, set[str]]:
    sources = {module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, tree in sources.items():
        graph[name] = {m for m in load_time_imports(tree) if m in sources and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle():
    graph = import_graph()
    # A package imports its parent package's __init__ when loaded; that edge is not a circle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_functions_and_modules_are_small():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "\n".join(too_long)


def test_inference_does_not_import_the_metrics():
    """Transcribing needs no scoring code (nor jiwer): the graph from transcribe avoids it."""
    graph = import_graph()
    seen, todo = set(), ["voxlm.transcribe"]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    assert "voxlm.evaluate" not in seen


def test_earlier_import_paths_still_work():
    from voxlm import Transcript, Word, results, text, timing
    from voxlm.alignment import Aligner, dtw, token_spans, tokens_to_words, word_confidence
    from voxlm.decoding import DecodingOptions as Options
    from voxlm.decoding import Transcript as OldTranscript
    from voxlm.decoding import Word as OldWord
    from voxlm.evaluate import align_words, matched_words, normalize_word

    assert OldWord is Word is results.Word and OldTranscript is Transcript
    assert tokens_to_words is timing.tokens_to_words and dtw is timing.dtw
    assert matched_words is text.matched_words and normalize_word is text.normalize_word
    assert align_words is text.align_words
    assert Aligner and token_spans and word_confidence and Options
