"""`StepCost`: what one `llama_decode` step costs on this machine, fitted from the steps the engine ran,
so the scheduler can size a long prompt's prefill chunk by time rather than by a count of tokens.

A token's cost grows with the positions it attends to: on the 2-core test machine (SmolLM2-135M, no
flash attention) a prompt token costs 3.8 ms at depth 0, 8.1 ms at 4k and 13.3 ms at 8k, so 256 tokens
are 1 s of work at the start of a prompt and 3.4 s at 8k. Below that, the cost per token barely
depends on how many share the step (from 32 tokens up, within 2-5%), so a smaller chunk costs a CPU
engine almost nothing, and a continuation that arrives while it runs waits that much less.

The model: seconds = overhead + per_token x tokens + per_position x attended, where `attended` is the
sum over the batch's tokens of their positions (a chunk of n tokens from position s attends
n*s + n(n-1)/2). It is fitted by least squares of relative errors (a shared machine's noise is a
share of the step, not a fixed time) over the recent steps (each older step weighs `FORGET` times
less, so a change of speed, threads or machine load is followed within tens of steps), with every
coefficient kept at least zero. Until it has seen `READY_STEPS` steps it predicts nothing,
and the scheduler keeps its token count.
"""

from __future__ import annotations

FORGET = 0.97  # weight of a step one step older (about 30 steps' memory)
READY_STEPS = 8
RIDGE = 1e-6  # keeps the normal equations solvable before the steps vary
# features are scaled to similar sizes so the 3x3 solve is well conditioned
TOKEN_SCALE = 256.0
POSITION_SCALE = 1e6


def attended_positions(start: int, count: int) -> int:
    """The positions `count` tokens placed from position `start` attend to, summed."""
    return count * start + count * (count - 1) // 2


class StepCost:
    def __init__(self) -> None:
        self._xx = [[0.0] * 3 for _ in range(3)]  # weighted sums of x x^T
        self._xy = [0.0] * 3  # weighted sums of x * seconds
        self._seen = 0
        self._theta: tuple[float, float, float] | None = None

    @staticmethod
    def _features(tokens: int, attended: int) -> tuple[float, float, float]:
        return 1.0, tokens / TOKEN_SCALE, attended / POSITION_SCALE

    def record(self, tokens: int, attended: int, seconds: float) -> None:
        """A step of `tokens` batch tokens attending `attended` positions took `seconds`."""
        x = self._features(tokens, attended)
        weight = 1.0 / max(seconds, 1e-4) ** 2  # the machine's noise is a share of the step: fit relative errors
        for i in range(3):
            self._xy[i] = FORGET * self._xy[i] + weight * x[i] * seconds
            row = self._xx[i]
            for j in range(3):
                row[j] = FORGET * row[j] + weight * x[i] * x[j]
        self._seen += 1
        self._theta = None

    @property
    def coefficients(self) -> tuple[float, float, float] | None:
        """(overhead s, s per token, s per attended position), or None while unknown."""
        if self._seen < READY_STEPS:
            return None
        if self._theta is None:
            self._theta = self._fit()
        theta = self._theta
        return theta[0], theta[1] / TOKEN_SCALE, theta[2] / POSITION_SCALE

    def _fit(self) -> tuple[float, float, float]:
        """Least squares with every coefficient at least zero: a negative one is dropped and the rest
        fitted again (three features: at most a few solves)."""
        free = [0, 1, 2]
        while True:
            solution = _solve_linear(
                [[self._xx[i][j] + (RIDGE if i == j else 0.0) for j in free] for i in free],
                [self._xy[i] for i in free],
            )
            negative = [free[k] for k, value in enumerate(solution) if value < 0]
            if not negative:
                theta = [0.0, 0.0, 0.0]
                for k, index in enumerate(free):
                    theta[index] = solution[k]
                return theta[0], theta[1], theta[2]
            free = [index for index in free if index not in negative]
            if not free:
                return 0.0, 0.0, 0.0

    def predict(self, tokens: int, attended: int) -> float | None:
        """Seconds for a step of `tokens` batch tokens attending `attended` positions; None while unknown."""
        theta = self.coefficients
        if theta is None:
            return None
        return theta[0] + theta[1] * tokens + theta[2] * attended

    def tokens_within(self, budget: float, tokens: int, attended: int, start: int, most: int) -> int | None:
        """How many prompt tokens from position `start` (at most `most`) a step already holding `tokens`
        tokens attending `attended` positions can add and stay within `budget` seconds; None while the
        model is unknown. 0 when the step is already over the budget."""
        if self.predict(tokens, attended) is None:
            return None
        low, high = 0, most  # the cost grows with the count: the largest count that fits, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            seconds = self.predict(tokens + middle, attended + attended_positions(start, middle))
            if seconds is not None and seconds <= budget:
                low = middle
            else:
                high = middle - 1
        return low

    def stats(self) -> dict[str, float | int | None]:
        theta = self.coefficients
        if theta is None:
            return {"steps_seen": self._seen, "overhead_ms": None, "ms_per_token": None,
                    "ms_per_1k_attended_positions": None}
        return {"steps_seen": self._seen, "overhead_ms": 1000 * theta[0], "ms_per_token": 1000 * theta[1],
                "ms_per_1k_attended_positions": 1e6 * theta[2]}


def _solve_linear(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting; a singular system gives zeros for what it cannot fix."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-18:
            continue
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col:
                factor = a[r][col] / a[col][col]
                for c in range(col, n + 1):
                    a[r][c] -= factor * a[col][c]
    return [a[i][n] / a[i][i] if abs(a[i][i]) >= 1e-18 else 0.0 for i in range(n)]
