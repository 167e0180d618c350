"""The seccomp filter of a rules process (docs/game-rules.md, "Sandbox").

Installed by the launcher after the interpreter is running and before any bundle code,
so it can refuse ``execve`` outright. Rules only compute and talk over their inherited
stdin/stdout pipes; the filter refuses the system calls that would let them start
programs, make sockets, create processes or namespaces, inspect other processes,
change mounts, or reach the kernel through io_uring (whose socket and connect
operations bypass seccomp). Built with libseccomp (pyseccomp) so the syscall numbers
and the architecture check come from its tables, not from a copy here.
"""

from __future__ import annotations

import errno

import pyseccomp

from fairdht.game.namespaces import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
)

__all__ = ["DENIED_SYSCALLS", "install_filter"]

_CLONE_THREAD = 0x00010000
_PR_SET_PDEATHSIG = 1
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_NAMESPACE_FLAGS = (
    CLONE_NEWNS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
    _CLONE_NEWCGROUP,
    _CLONE_NEWUTS,
)

# Each group names what it stops; all answer EPERM.
DENIED_SYSCALLS: tuple[str, ...] = (
    # starting programs (/bin/sh, anything on the host)
    "execve",
    "execveat",
    # new processes that could outlive a call or hide CPU (threads stay allowed, below)
    "fork",
    "vfork",
    # new sockets: Unix sockets to host services, netlink, raw sockets
    "socket",
    "socketpair",
    # reading or steering other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    # leaving or rebuilding the namespaces and the private root
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    # kernel surfaces a game never needs
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
)

_UNKNOWN_SYSCALL = -1  # libseccomp's __NR_SCMP_ERROR: a name it does not know at all


def install_filter() -> None:
    """Load the filter into the calling process; it holds for it and every thread it starts.

    The caller must already have set no-new-privileges (or be privileged). Any syscall
    not named here is allowed, so the interpreter keeps working; the list is what a
    hostile rules program used, or could use, to reach outside its match.
    """
    deny = pyseccomp.ERRNO(errno.EPERM)
    arch = pyseccomp.system_arch()
    filt = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        number = pyseccomp.resolve_syscall(arch, name)
        if number != _UNKNOWN_SYSCALL:  # negative pseudo-numbers: absent on this arch
            filt.add_rule(deny, number)
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes glibc fall
    # back to clone, whose flags the rules below can check.
    filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    # clone is allowed for threads only: without CLONE_THREAD it is a fork.
    filt.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_THREAD, 0))
    for flag in _NAMESPACE_FLAGS:
        filt.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    # The parent-death signal is what kills the init if its supervisor dies; keep it.
    filt.add_rule(deny, "prctl", pyseccomp.Arg(0, pyseccomp.EQ, _PR_SET_PDEATHSIG))
    filt.load()
