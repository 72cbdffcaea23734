"""Running a built pipeline (the prefetch queue kept full, the batches per epoch) and telling
a DALI failure about a file (the data's fault, named) from any other (:class:`PipelineError`)."""

from __future__ import annotations

import math
import re

from dalinorm.errors import DatasetError

__all__ = ["PipelineError", "explain_pipeline_error", "is_file_error", "last_dali_line",
           "padded_shard_batches", "pipeline_batches", "prefetch_depth", "run_batches"]


def pipeline_batches(listing, rank: int, world_size: int, batch_size: int) -> int:
    """Batches per epoch of a :meth:`GraphSpec.for_rank` pipeline: the rank's own block,
    or, with DALI's sharding of a pack, the largest block's (DALI pads every shard to it)."""
    if listing.packed and world_size > 1:
        return padded_shard_batches(len(listing), world_size, batch_size)
    start, end = listing.rank_block(rank, world_size)
    return math.ceil((end - start) / batch_size)


def padded_shard_batches(num_samples: int, world_size: int, batch_size: int) -> int:
    """Batches per epoch of a DALI reader sharding ``num_samples`` across ``world_size`` with
    ``pad_last_batch``: every shard is padded to the largest shard's batch count."""
    return math.ceil(math.ceil(num_samples / world_size) / batch_size)


def prefetch_depth(pipe) -> int:
    """How many runs a pipeline can have scheduled ahead (separated CPU/GPU queues: the larger)."""
    depth = pipe.prefetch_queue_depth
    return depth if isinstance(depth, int) else max(depth.values())


def run_batches(pipe, batches: int):
    """Yield the outputs of ``batches`` iterations of a built pipeline, keeping its prefetch
    queue full (``pipe.run()`` alone waits for each batch before asking for the next, so
    reading, decoding and reducing never overlap). Schedules exactly ``batches`` runs."""
    depth = prefetch_depth(pipe)
    scheduled = 0
    while scheduled < min(depth, batches):
        pipe.schedule_run()
        scheduled += 1
    for _ in range(batches):
        outputs = pipe.outputs()
        if scheduled < batches:
            pipe.schedule_run()
            scheduled += 1
        yield outputs


class PipelineError(RuntimeError):
    """A DALI pipeline failed for a reason other than a file (a build failure, out of memory,
    an operator argument): not the user's data, so not a :class:`DatasetError`."""


_FILE_IN_ERROR = re.compile(r"(?:Failed to decode sample #\d+ : |File mapping failed: |"
                            r"Could not open file |Failed to open file )(?P<path>[^\n]+?)\s*$", re.M)


# DALI names the failing operator: "Error in CPU operator `nvidia.dali.fn.decoders.image`,"
_OPERATOR_IN_ERROR = re.compile(r"Error in \w+ operator `(?:nvidia\.dali\.)?(?P<op>[\w.]+)`")


# operators whose failures are about the bytes they read (DALI names no file for some of
# them: random bytes give "nvImageCodec failure: '#4'")
_FILE_OPERATORS = ("fn.readers.", "fn.decoders.", "fn.experimental.decoders.", "fn.experimental.readers.")


# not the file's fault even inside a reader or decoder
_RESOURCE_FAILURE = re.compile(r"out of memory|bad_alloc|cudaErrorMemoryAllocation|CUDA error|"
                               r"CUDA driver|CUDA-capable", re.I)


_NOISE = ("C++ context", "File \"", "Current pipeline object is no longer valid", "Critical error in",
          "which was used in the pipeline definition", "encountered:", "Error in ")


def _meaningful_lines(text: str) -> list[str]:
    """DALI's message without its framing: pipeline traceback, C++ context, 'no longer valid'."""
    after = text.split("encountered:", 1)[1] if "encountered:" in text else text
    return [l.strip() for l in after.splitlines()
            if l.strip() and not l.strip().startswith(_NOISE) and not l.startswith("    ")]


def last_dali_line(err: BaseException) -> str:
    """The last line of a DALI error that says what went wrong (DALI puts the reason last,
    after its pipeline traceback and C++ context)."""
    lines = [l.strip() for l in str(err).splitlines()
             if l.strip() and "no longer valid" not in l and not l.startswith(("C++ context", "File \""))]
    return lines[-1] if lines else type(err).__name__


def is_file_error(err: BaseException) -> bool:
    """Whether a DALI runtime error is about a file it read or decoded (the data's fault), as
    opposed to a pipeline that could not be built, memory, or an operator's argument."""
    text = str(err)
    if _RESOURCE_FAILURE.search(text):
        return False
    if _FILE_IN_ERROR.search(text):
        return True
    operator = _OPERATOR_IN_ERROR.search(text)
    return operator is not None and operator.group("op").startswith(_FILE_OPERATORS)


def explain_pipeline_error(err: Exception, listing=None) -> DatasetError | PipelineError:
    """A DALI runtime error as one line: a :class:`DatasetError` naming the file when the
    failure is about a file (read or decode), else a :class:`PipelineError` with the failing
    operator and DALI's first meaningful line.

    DALI names the file for decode and mapping failures ("Failed to decode sample #3 :
    /data/x.jpg"; in a pack "/packs/train/shard-000004.tar:512:000000004.jpg", which
    ``listing`` turns back into the image's original path); where it does not, the message
    says how to find the file.
    """
    text = str(err)
    if not is_file_error(err):
        lines = _meaningful_lines(text)
        operator = _OPERATOR_IN_ERROR.search(text)
        where = f" in {operator.group('op')}" if operator else ""
        hint = ("; lower loader.batch_size or loader.prefetch" if re.search(r"out of memory|bad_alloc",
                                                                           text, re.I) else "")
        return PipelineError(f"DALI pipeline failed{where} (not a file problem): "
                             f"{lines[0] if lines else type(err).__name__}{hint}")
    match = _FILE_IN_ERROR.search(text)
    detail = last_dali_line(err)
    packed = listing is not None and listing.packed
    hint = ("run `dalinorm check-data CONFIG` to list every unusable image, then re-pack from the "
            "source with data.on_bad_file: skip and check-data's --write-list" if packed else
            "run `dalinorm check-data CONFIG` to list every unusable file, then set "
            "data.on_bad_file: skip with its --write-list")
    if match:
        path = match.group("path")
        detail = detail.replace(path, "").rstrip(" :") or "decoder error"
        if packed:
            path = describe_member(listing, path)
        return DatasetError(f"{path}: cannot be read or decoded mid-run ({detail}); {hint}")
    return DatasetError(f"a file could not be read or decoded mid-run ({detail}); {hint}")


def describe_member(listing, source_info: str) -> str:
    """'<tar>:<data offset>:<member>' (DALI's source info in a pack) → the listing's
    description of that image, with its original path; unchanged if it is not found."""
    tar, _, rest = source_info.rpartition(".tar:")
    offset = rest.split(":", 1)[0]
    if not tar or not offset.isdigit():
        return source_info
    for shard in listing.shards:
        if str(shard.path) == tar + ".tar":
            for i in range(shard.start, shard.start + shard.count):
                if listing.offsets[i] == int(offset):
                    return listing.describe(i)
    return source_info
