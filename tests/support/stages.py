"""What a benchmark's step cost Spark's executors: the task metrics of the stages it ran, summed, from the driver's
status store (it keeps the last ``spark.ui.retainedStages`` stages, 1000 by default)."""

from __future__ import annotations

from typing import Any

# name -> (StageData getter, factor to the unit of the name)
METRICS = {
    "executor_s": ("executorRunTime", 1e-3),  # the tasks' run time summed over cores
    "executor_cpu_s": ("executorCpuTime", 1e-9),
    "input_bytes": ("inputBytes", 1),
    "output_bytes": ("outputBytes", 1),
    "shuffle_write_bytes": ("shuffleWriteBytes", 1),
    "spilled_memory_bytes": ("memoryBytesSpilled", 1),
    "spilled_disk_bytes": ("diskBytesSpilled", 1),
    "tasks": ("numTasks", 1),
}


def _stages(spark) -> Any:
    sc = spark.sparkContext
    sc._jsc.sc().listenerBus().waitUntilEmpty()  # the store is updated from the listener bus
    jvm = sc._jvm
    stages = (
        sc._jsc.sc()
        .statusStore()
        .stageList(None, False, False, sc._gateway.new_array(jvm.double, 0), jvm.java.util.ArrayList())
    )
    return [stages.apply(i) for i in range(stages.size())]


def stage_ids(spark) -> set[tuple[int, int]]:
    """The (stage, attempt) ids the status store holds now."""
    return {(s.stageId(), s.attemptId()) for s in _stages(spark)}


def metrics_since(spark, before: set[tuple[int, int]]) -> dict[str, float]:
    """The ``METRICS`` summed over the stages that ran since ``stage_ids`` returned ``before``, and their count."""
    new = [s for s in _stages(spark) if (s.stageId(), s.attemptId()) not in before]
    totals = {name: sum(getattr(s, getter)() for s in new) * factor for name, (getter, factor) in METRICS.items()}
    return {**totals, "stages": len(new)}
