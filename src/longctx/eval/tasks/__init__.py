"""The benchmark registry: importing this package registers every task module."""

from longctx.eval.tasks import infbench, leval, longbench_v2, loong, qa  # noqa: F401
from longctx.eval.tasks.base import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task"]
