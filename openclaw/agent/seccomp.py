# -*- test-case-name: tests.test_sandbox -*-
"""
The sandbox's seccomp filter, assembled by hand as a classic BPF program
(bubblewrap's C{--seccomp FD} loads it just before it starts the command).

It is a deny list on top of what the sandbox already takes away (every
capability, a non-root uid, read-only system folders): the system calls
that reach kernel surfaces a confined command never needs, and that have
carried most container escapes. Denied calls fail with C{EPERM}, except
C{clone3}, which fails with C{ENOSYS} so that the C library falls back to
C{clone}, whose flags the filter can inspect (C{clone3} passes them in
memory, out of the filter's sight). A call from another ABI than the one
the filter was built for (x32, or 32-bit compat) kills the process.
"""

from __future__ import annotations

import errno
import platform
import struct

# seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR = 0
_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index  # little-endian: the low 32 bits come first


_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_CLONE_NEWUSER = 0x10000000
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_X32_BIT = 0x40000000

DENIED = (
    "mount umount2 pivot_root chroot swapon swapoff reboot sethostname setdomainname iopl ioperm "
    "init_module finit_module delete_module quotactl kexec_load kexec_file_load acct settimeofday "
    "clock_settime clock_adjtime adjtimex keyctl add_key request_key ptrace process_vm_readv "
    "process_vm_writev bpf perf_event_open userfaultfd unshare setns open_by_handle_at "
    "name_to_handle_at syslog lookup_dcookie uselib vhangup fanotify_init io_uring_setup "
    "io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick "
    "mount_setattr kcmp pidfd_getfd modify_ldt _sysctl nfsservctl create_module get_kernel_syms "
    "query_module"
).split()

# Numbers from <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64).
_X86_64 = {
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "quotactl": 179, "kexec_load": 246,
    "kexec_file_load": 320, "acct": 163, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305,
    "adjtimex": 159, "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "unshare": 272, "setns": 308, "clone": 56, "clone3": 435,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "syslog": 103, "lookup_dcookie": 212,
    "uselib": 134, "vhangup": 153, "fanotify_init": 300, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ioctl": 16, "kcmp": 312, "pidfd_getfd": 438,
    "modify_ldt": 154, "_sysctl": 156, "nfsservctl": 180, "create_module": 174, "get_kernel_syms": 177,
    "query_module": 178,
}  # fmt: skip
_AARCH64 = {
    "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "swapon": 224, "swapoff": 225,
    "reboot": 142, "sethostname": 161, "setdomainname": 162, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "quotactl": 60, "kexec_load": 104, "kexec_file_load": 294, "acct": 89,
    "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "keyctl": 219,
    "add_key": 217, "request_key": 218, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
    "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "unshare": 97, "setns": 268, "clone": 220,
    "clone3": 435, "open_by_handle_at": 265, "name_to_handle_at": 264, "syslog": 116,
    "lookup_dcookie": 18, "vhangup": 58, "fanotify_init": 262, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ioctl": 29, "kcmp": 272,
    "pidfd_getfd": 438, "nfsservctl": 42,
}  # fmt: skip

# machine name → (AUDIT_ARCH_*, syscall table, x32 calls share the number space)
ARCHES = {
    "x86_64": (0xC000003E, _X86_64, True),
    "aarch64": (0xC00000B7, _AARCH64, False),
}


class UnsupportedArch(Exception):
    """No filter is known for this machine; the sandbox refuses to run without one."""


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes:
    """The BPF program (an array of C{struct sock_filter}) for C{machine} (default: this one)."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise UnsupportedArch(f"no seccomp filter for the {machine} architecture (known: {', '.join(sorted(ARCHES))})")
    audit_arch, table, x32 = ARCHES[machine]
    eperm = _RET_ERRNO | errno.EPERM
    prog = [
        _op(_LD_W_ABS, _ARCH),
        _op(_JEQ_K, audit_arch, 1, 0),
        _op(_RET_K, _RET_KILL_PROCESS),
        _op(_LD_W_ABS, _NR),
    ]
    if x32:
        prog += [_op(_JGE_K, _X32_BIT, 0, 1), _op(_RET_K, _RET_KILL_PROCESS)]
    for name in DENIED:
        if name in table:  # some calls exist on one architecture only
            prog += [_op(_JEQ_K, table[name], 0, 1), _op(_RET_K, eperm)]
    # clone3 hides its flags from the filter: ENOSYS makes libc use clone.
    prog += [_op(_JEQ_K, table["clone3"], 0, 1), _op(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    # clone(CLONE_NEWUSER): no new user namespaces (so no capabilities in one).
    prog += [
        _op(_JEQ_K, table["clone"], 0, 4),
        _op(_LD_W_ABS, _arg_low(0)),
        _op(_JSET_K, _CLONE_NEWUSER, 0, 1),
        _op(_RET_K, eperm),
        _op(_LD_W_ABS, _NR),
    ]
    # ioctl(TIOCSTI/TIOCLINUX): no typing into a terminal outside the sandbox.
    prog += [
        _op(_JEQ_K, table["ioctl"], 0, 5),
        _op(_LD_W_ABS, _arg_low(1)),
        _op(_JEQ_K, _TIOCSTI, 1, 0),
        _op(_JEQ_K, _TIOCLINUX, 0, 1),
        _op(_RET_K, eperm),
        _op(_LD_W_ABS, _NR),
    ]
    prog.append(_op(_RET_K, _RET_ALLOW))
    return b"".join(prog)
