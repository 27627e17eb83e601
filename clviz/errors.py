"""The errors clviz expects: one family, so that a caller (the command line, a notebook) can
tell a problem with what was asked for, or with what the disk holds, from a bug.

Every error here carries a message that names the problem and its fix; ``clviz`` prints it as
one line. Anything else that escapes is a bug in clviz: the command line keeps its traceback
and says how to report it. Each class also derives from the built-in error it refines
(``ValueError``, ``OSError``...), so ``except ValueError`` keeps working.

The other members live beside what raises them: :class:`~clviz.core.integrity.ResultError`
(a damaged or foreign file), :class:`~clviz.core.io.WriteError`,
:class:`~clviz.core.store.RunDirError`,
:class:`~clviz.core.lock.FolderBusyError`, :class:`~clviz.core.loop.DivergenceError`,
:class:`~clviz.core.validation.OptionError`, :class:`~clviz.core.device.DeviceError`,
:class:`~clviz.backbone_config.BackboneError`, :class:`~clviz.data.scan.DatasetError`,
:class:`~clviz.experiments.workers.WorkerError`.
"""

from __future__ import annotations

import torch


class ClvizError(Exception):
    """An expected failure: bad input, a damaged file, a busy folder, a diverged run..."""


class InputError(ClvizError, ValueError):
    """A value the user gave (a name, an option, a path, a config) is not valid."""


class UnknownNameError(InputError, KeyError):
    """A name that is not among the valid ones (a layer, a method's results); the message
    lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0]) if self.args else ""


class MissingFileError(ClvizError, FileNotFoundError):
    """A file or folder clviz needs is not there; the message says how to provide it."""


class ImageReadError(InputError):
    """An image file of a dataset cannot be read; the message names the file."""


class OutOfMemory(ClvizError, torch.OutOfMemoryError):
    """The accelerator ran out of memory; the message names the batch size to lower."""


# Where a bug goes: clviz has no public tracker of its own yet, so the one of its repository.
REPORT_BUGS = "the issue tracker of the repository you got clviz from"
