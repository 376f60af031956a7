"""A small generic registry: names to entries, with helpful errors.

The idea of MMEngine's registry at a fraction of its size: no scopes, no parents.

A registry can be given an ``on_miss`` hook: when :meth:`Registry.get` does not find a
name, it calls the hook, which may register more entries, and looks again. annfactory's
three registries use it to load plugins (:mod:`annfactory.plugins`) only when a name is
missing, never on ``import annfactory`` or on a look-up that succeeds.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from annfactory.errors import AnnFactoryError, RegistrationError, UnknownNameError

if TYPE_CHECKING:
    from annfactory.params import Param

__all__ = ["EntryCoercion", "MissHook", "Registry", "first_doc_line"]

T = TypeVar("T")

MissHook = Callable[[], object]
"""Called when a look-up misses; may register entries (its result is ignored). It is
called on every miss, so it should be cheap after its first call."""


class Registry(Generic[T]):
    """Maps names to entries of one kind.

    Args:
        kind: What the entries are, in words (``"activation"``); used in messages.
        coerce: Turns what ``register`` receives into an entry of type ``T``, given the
            name and any keyword options passed to ``register``. Lets a decorator accept
            a plain function or class. Defaults to storing the object unchanged.
        on_miss: Called with no arguments when :meth:`get` does not find a name; may
            register entries, then :meth:`get` looks again. None (the default)
            disables it. Only
            :meth:`get` (and :meth:`origin` and :meth:`unregister`, which use it)
            call it: ``in``, :meth:`names`, :meth:`items` and iteration stay cheap
            and see only the entries registered so far.

    Example:
        >>> fruits: Registry[str] = Registry("fruit")
        >>> _ = fruits.register("apple", "red")
        >>> fruits.get("apple")
        'red'
    """

    def __init__(
        self,
        kind: str,
        coerce: Callable[..., T] | None = None,
        on_miss: MissHook | None = None,
    ) -> None:
        self.kind = kind
        self.on_miss = on_miss
        self._coerce = coerce
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    @overload
    def register(
        self, name: str, obj: None = None, **options: Any
    ) -> Callable[[Any], Any]: ...

    @overload
    def register(self, name: str, obj: Any, **options: Any) -> T: ...

    def register(self, name: str, obj: Any = None, **options: Any) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, act as a decorator.

        The decorator returns the decorated object unchanged, so a registered function
        or class stays usable as itself.

        Raises:
            RegistrationError: ``name`` is taken (the message says where the first
                entry came from) or not a valid identifier.
        """
        caller = str(sys._getframe(1).f_globals.get("__name__", "?"))
        if obj is None:

            def decorator(target: Any) -> Any:
                self._add(name, target, options, caller)
                return target

            return decorator
        return self._add(name, obj, options, caller)

    def _add(self, name: str, obj: Any, options: dict[str, Any], caller: str) -> T:
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise RegistrationError(
                f"{self.kind} name {name!r} must be an ASCII identifier "
                "(letters, digits, underscores)"
            )
        if name in self._entries:
            raise RegistrationError(
                f"{self.kind} {name!r} is already registered "
                f"(from {self._origins[name]}); choose another name or unregister "
                "the first one"
            )
        entry: T = self._coerce(obj, name=name, **options) if self._coerce else obj
        self._entries[name] = entry
        self._origins[name] = _origin_of(obj, caller)
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return the entry called ``name``."""
        entry = self.get(name)
        del self._entries[name]
        del self._origins[name]
        return entry

    def get(self, name: str, key: str = "") -> T:
        """Return the entry called ``name``.

        Args:
            name: The registered name.
            key: The config path the name came from, for the error message.

        Raises:
            UnknownNameError: No such entry, even after the ``on_miss`` hook; names
                the closest and all valid names. If the hook failed with an
                annfactory error (a plugin that did not load), its message is the
                error's second line, and the hook's error is its cause: the name may
                be a typo as well as the broken plugin's.
        """
        failure: AnnFactoryError | None = None
        if isinstance(name, str) and name not in self._entries:
            failure = self._call_on_miss(name)
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        lines = [line.strip() for line in str(failure or "").splitlines()]
        note = "; ".join(line.rstrip(".") for line in lines if line)
        note += "." if note else ""
        error = UnknownNameError(key, self.kind, name, self._entries, note=note)
        raise error from failure

    def _call_on_miss(self, name: str) -> AnnFactoryError | None:
        """Call the hook; return its annfactory error (other errors propagate)."""
        if self.on_miss is None:
            return None
        try:
            self.on_miss()
        except Exception as error:
            # A hook that failed part-way (one broken plugin among several) may still
            # have registered this name; then the look-up succeeds.
            if name in self._entries:
                return None
            if isinstance(error, AnnFactoryError):
                return error
            raise
        return None

    def names(self) -> list[str]:
        """Sorted names of the entries registered so far (never calls ``on_miss``)."""
        return sorted(self._entries)

    def names_in_order(self) -> list[str]:
        """Names of the entries registered so far, in the order they were registered
        (the built-in entries first, as their module's table lists them); never calls
        ``on_miss``."""
        return list(self._entries)

    def origin(self, name: str) -> str:
        """Where the entry called ``name`` was defined (``module:qualname``)."""
        self.get(name)
        return self._origins[name]

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in name order."""
        return [(name, self._entries[name]) for name in self.names()]

    def snapshot(self) -> tuple[dict[str, T], dict[str, str]]:
        """Copy of the current entries, for :meth:`restore` (used by tests)."""
        return dict(self._entries), dict(self._origins)

    def restore(self, state: tuple[dict[str, T], dict[str, str]]) -> None:
        """Return to a state taken with :meth:`snapshot`."""
        self._entries, self._origins = dict(state[0]), dict(state[1])

    def __contains__(self, name: object) -> bool:
        # Never calls on_miss: a membership test must stay cheap and free of imports.
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _origin_of(obj: Any, caller: str) -> str:
    """Where ``obj`` was defined (functions, classes) or registered (other objects)."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return f"registered in module {caller}"
    if inspect.isfunction(obj) and inspect.getsourcefile(obj):
        # The line that getsourcelines would find, without reading and tokenizing
        # the file: that costs milliseconds per entry at import.
        line_number = obj.__code__.co_firstlineno
        return f"{obj.__module__}.{obj.__qualname__}, line {line_number}"
    try:
        line = f", line {inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        line = ""
    return f"{obj.__module__}.{obj.__qualname__}{line}"


def first_doc_line(obj: object) -> str:
    """The first line of ``obj``'s docstring, for listings ("" without one)."""
    text = getattr(obj, "__doc__", None)
    if not isinstance(text, str) or not text.strip():
        return ""
    return text.strip().splitlines()[0]


def _is_entry(
    obj: Any, entry_type: type, refusal: str, options: Mapping[str, Any]
) -> bool:
    """Whether ``obj`` is already a registry entry, registered as it is: options
    with it are refused with ``refusal``."""
    if not isinstance(obj, entry_type):
        return False
    if options:
        raise RegistrationError(refusal)
    return True


@dataclass(frozen=True)
class EntryCoercion(Generic[T]):
    """A registry's ``coerce``: an entry as it is, or a function or class whose
    signature gives the entry's parameters.

    ``register(name, obj, **options)`` calls it. An ``obj`` of ``entry_type`` is
    registered as it is (options with it are an error). Any other ``obj`` that
    ``accepts`` takes becomes ``make(obj, params=..., doc=..., **options)``: its
    parameters are ``options["params"]`` if given, else ``params_of(obj, name)``
    (read from its signature); its doc is ``options["doc"]`` if given, else the
    first line of its docstring. A ``TypeError`` of ``make`` (an unknown option)
    becomes a :class:`~annfactory.errors.RegistrationError` naming the entry.

    Args:
        kind: The entry in words, for messages (``"layer"``: ``layer 'name': ...``).
        entry_type: The registry's entry class (``LayerType``).
        entry_words: It, in words (``"a LayerType"``).
        source_words: What else is accepted, in words (``"an nn.Module class"``).
        accepts: Whether ``obj`` is such a thing (``inspect.isclass``).
        params_of: ``params_of(obj, name)``: the parameters its signature declares.
        make: ``make(obj, /, params=..., doc=..., **options)``: the entry.
    """

    kind: str
    entry_type: type[T]
    entry_words: str
    source_words: str
    accepts: Callable[[Any], bool]
    params_of: Callable[[Any, str], Mapping[str, Param]]
    make: Callable[..., T]

    def __call__(self, obj: Any, /, *, name: str, **options: Any) -> T:
        what = f"{self.kind} {name!r}"
        refusal = f"{what}: options given with {self.entry_words}"
        if _is_entry(obj, self.entry_type, refusal, options):
            return cast(T, obj)
        if not self.accepts(obj):
            raise RegistrationError(
                f"{what}: expected {self.source_words} or {self.entry_words}"
            )
        params = dict(options.pop("params", None) or self.params_of(obj, name))
        doc = options.pop("doc", None) or first_doc_line(obj)
        try:
            return self.make(obj, params=params, doc=doc, **options)
        except TypeError as error:
            raise RegistrationError(f"{what}: {error}") from None


@dataclass(frozen=True)
class BuildCoercion(Generic[T]):
    """A registry's ``coerce`` for entries made around a build function (optimizers,
    schedules, losses): an entry as it is, or a function that becomes
    ``entry_type(build=obj, doc=..., **options)``.

    An ``obj`` of ``entry_type`` is registered as it is (options with it are an
    error); any other callable is the entry's build function, its doc
    ``options["doc"]`` if given, else the first line of its docstring. ``check``,
    if given, sees the name and the options first and raises for a bad one. A
    ``TypeError`` of the entry's constructor (an unknown option) becomes a
    :class:`~annfactory.errors.RegistrationError` naming the entry.

    Args:
        kind: The entry in words, for messages (``"loss"``: ``loss 'name': ...``).
        entry_type: The registry's entry class (``LossType``).
        entry_words: It, in words (``"a LossType"``).
        check: ``check(name, options)``: refuses options the constructor accepts
            but the entry cannot use.
    """

    kind: str
    entry_type: type[T]
    entry_words: str
    check: Callable[[str, Mapping[str, Any]], None] | None = None

    def __call__(self, obj: Any, /, *, name: str, **options: Any) -> T:
        what = f"{self.kind} {name!r}"
        refusal = f"{what}: options given with {self.entry_words}"
        if _is_entry(obj, self.entry_type, refusal, options):
            return cast(T, obj)
        if not callable(obj):
            raise RegistrationError(
                f"{what}: expected a build function or {self.entry_words}, got "
                f"{type(obj).__name__}"
            )
        doc = options.pop("doc", None) or (inspect.getdoc(obj) or "").split("\n")[0]
        if self.check is not None:
            self.check(name, options)
        make = cast("Callable[..., T]", self.entry_type)
        try:
            return make(build=obj, doc=doc, **options)
        except TypeError as error:
            raise RegistrationError(f"{what}: {error}") from None
