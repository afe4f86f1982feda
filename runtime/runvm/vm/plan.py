"""The VM a container gets: the cold-boot command line, the template key it maps to, and the restore variant.
One place for it, because the vm-shim and the pool keeper must restore the very same VM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.runvm.vm import accel as accelmod
from runtime.runvm.vm import qemu, template


@dataclass(frozen=True)
class Plan:
    base: qemu.VMConfig
    """Cold boot: the real kernel and initrd, anonymous RAM."""
    key: str
    """The template key (kernel, guest image, agent, QEMU, VM size, accel, cmdline)."""
    accel: str
    accel_why: str

    @property
    def pool_key(self) -> str:
        """Spares are interchangeable only with the same template and the same translation cache."""
        return f"{self.key}-tb{self.base.tb_size_mib}"

    def restored(self, tpl: template.Template) -> qemu.VMConfig:
        """The template's RAM file mapped private, a 4 KiB stub kernel instead of the real one, -incoming."""
        from runtime.runvm.vm import stub_kernel

        kernel, initrd = stub_kernel.ensure(template.TEMPLATES)
        return qemu.VMConfig(**{**self.base.__dict__, "ram_file": tpl.memory, "ram_shared": False,
                                "incoming": True, "console_log": None, "kernel": kernel, "initrd": initrd})


def make(share_dir: Path, sock_dir: Path, tap_fd: int | None, tb_mib: int | None,
         console_log: Path | None) -> Plan:
    from runtime.runvm.vm import guest

    accel, accel_why = accelmod.choose()
    art = guest.artifacts()
    base = qemu.VMConfig(kernel=art.kernel, initrd=art.initrd, osimage=art.osimage, cmdline=guest.cmdline(accel),
                         share_dir=share_dir, agent_sock=sock_dir / "agent.sock", qmp_sock=sock_dir / "qmp.sock",
                         size=qemu.Size(), accel=accel, tap_fd=tap_fd, console_log=console_log,
                         tb_size_mib=tb_mib or qemu.DEFAULT_TB_MIB)
    return Plan(base, template.key_for(art.key, base.size, accel, base.cmdline), accel, accel_why)
