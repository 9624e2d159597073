"""Per-key request and token budgets, as continuously refilling token buckets.

Real providers meter per minute with buckets that refill continuously (Anthropic says so;
OpenAI's reset headers behave so): a bucket of capacity C refills at C/60 per second, a
request passes only if every bucket it draws on holds its cost, and the reset a header
reports is the time until the bucket is full again. Times here are scenario seconds; the
`time_scale` divides them into the real seconds clients are told to wait.
"""

from __future__ import annotations

import math

from evtui.sim.scenario import LimitSpec, ProviderSpec

WINDOW_S = 60.0


class TokenBucket:
    """Capacity `capacity` per minute, refilled continuously, starting full."""

    __slots__ = ("capacity", "level", "limit_text", "rate", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.limit_text = str(capacity)  # as the limit headers print it
        self.rate = self.capacity / WINDOW_S
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.stamp = now

    def shortfall_s(self, cost: float) -> float:
        """Seconds until `cost` fits (after refill); inf if it never can."""
        if cost <= self.level:
            return 0.0
        if cost > self.capacity:
            return math.inf
        return (cost - self.level) / self.rate

    def full_in_s(self) -> float:
        return (self.capacity - self.level) / self.rate

    def give(self, amount: float) -> None:
        level = self.level + amount
        self.level = level if level < self.capacity else self.capacity


class KeyLimits:
    """The buckets one (key, model) draws on; absent buckets are unlimited.

    `token_cost` says how a request is charged to `tokens`: 'sum' (input + max output),
    'max' (the larger of the two) or 'input'. `refund` returns unused pre-charged output
    tokens when the answer is known (Anthropic adjusts OTPM at the end of a request).
    """

    __slots__ = ("input", "output", "refund", "requests", "token_cost", "tokens")

    def __init__(self, spec: LimitSpec, now: float, token_cost: str, refund: bool) -> None:
        self.requests = TokenBucket(spec.rpm, now) if spec.rpm else None
        self.tokens = TokenBucket(spec.tpm, now) if spec.tpm else None
        self.input = TokenBucket(spec.itpm, now) if spec.itpm else None
        self.output = TokenBucket(spec.otpm, now) if spec.otpm else None
        self.token_cost = token_cost
        self.refund = refund

    def _cost(self, input_tokens: int, max_output: int) -> int:
        if self.token_cost == "sum":
            return input_tokens + max_output
        if self.token_cost == "max":
            return input_tokens if input_tokens > max_output else max_output
        return input_tokens

    def refill(self, now: float) -> None:
        for b in (self.requests, self.tokens, self.input, self.output):
            if b is not None:
                b.refill(now)

    def admit(self, input_tokens: int, max_output: int, now: float) -> tuple[float, str]:
        """Charge the request if every bucket holds its cost: (0, '') or (wait_s, bucket name).

        wait_s is in scenario seconds and inf when the request exceeds a bucket's capacity.
        """
        cost = self._cost(input_tokens, max_output)
        charges = []
        worst, name = 0.0, ""
        for bucket, amount, label in (
            (self.requests, 1, "requests"),
            (self.tokens, cost, "tokens"),
            (self.input, input_tokens, "input_tokens"),
            (self.output, max_output, "output_tokens"),
        ):
            if bucket is None:
                continue
            bucket.refill(now)
            if amount > bucket.level:
                wait = bucket.shortfall_s(amount)
                if wait > worst:
                    worst, name = wait, label
            charges.append((bucket, amount))
        if worst > 0.0:
            return worst, name
        for bucket, amount in charges:
            bucket.level -= amount
        return 0.0, ""

    def settle(self, max_output: int, output_tokens: int) -> None:
        """Give back pre-charged output tokens the answer did not use (when `refund`)."""
        unused = max_output - output_tokens
        if not self.refund or unused <= 0:
            return
        if self.output is not None:
            self.output.give(unused)
        if self.tokens is not None and self.token_cost != "input":
            self.tokens.give(unused)

    def bucket(self, name: str) -> TokenBucket | None:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "input_tokens": self.input,
            "output_tokens": self.output,
        }[name]

    def limit_of(self, name: str) -> int:
        b = self.bucket(name)
        return int(b.capacity) if b is not None else 0


_DEFAULT_COST = {"openai": "max", "compat": "max", "anthropic": "sum", "gemini": "input"}


class Limiter:
    """Buckets per (key, model) for one provider, created on first use."""

    __slots__ = ("_by", "_provider", "_spec", "enabled", "refund", "token_cost")

    def __init__(self, provider: str, spec: ProviderSpec) -> None:
        self._provider = provider
        self._spec = spec
        self._by: dict[tuple[str, str], KeyLimits | None] = {}
        self.token_cost = spec.token_cost or _DEFAULT_COST.get(provider, "sum")
        self.refund = provider == "anthropic"
        self.enabled = spec.limited or any(m.limited for m in spec.models.values())

    def get(self, key: str, model: str, now: float) -> KeyLimits | None:
        """The buckets for this key and model (None when they are unlimited)."""
        try:
            return self._by[key, model]
        except KeyError:
            spec = self._spec.limits_for(model)
            lim = KeyLimits(spec, now, self.token_cost, self.refund) if spec.limited else None
            self._by[key, model] = lim
            return lim
