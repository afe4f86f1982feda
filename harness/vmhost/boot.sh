#!/bin/sh
# A kind-vm stack's machine, after its first process (the image's /sbin/vmparity-init) mounted the suite's disk:
# mount what a host has (cgroup2 alone: this is the cgroup v2 host), load the modules Docker asks for, mount the
# run directory the booting machine shares, run the suite there (harness.vmhost.inside) and power off.
repo="$1"
arg() { sed -n "s/.*vmparity\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
out="$(arg out)"
say() { echo "vmparity-boot: $*" > /dev/console; }

mountpoint -q /sys/fs/cgroup || mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue /run/lock
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 shm /dev/shm
mountpoint -q /dev/mqueue || mount -t mqueue mqueue /dev/mqueue
mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmp /tmp
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
cat /etc/hostname > /proc/sys/kernel/hostname
ip link set lo up
for m in 9p 9pnet_virtio overlay bridge br_netfilter veth nf_tables nft_chain_nat nft_compat xt_conntrack \
         xt_MASQUERADE xt_addrtype ip_tables iptable_filter iptable_nat; do
  modprobe "$m" 2>/dev/null || say "module $m: not loaded"
done
mkdir -p "$out"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out "$out"; then
  say "cannot mount the run directory share at $out"
  echo o > /proc/sysrq-trigger
fi
say "up after $(cut -d' ' -f1 /proc/uptime) s; cgroup $(stat -f -c %T /sys/fs/cgroup); running the suite"
cd "$repo" || exit 1
PYTHONDONTWRITEBYTECODE=1 HOME=/root python3 -m harness.vmhost.inside "$out" > "$out/inside.log" 2>&1
echo "$?" > "$out/exit-code"
cp /var/log/vmparity-dockerd.log "$out/dockerd.log" 2>/dev/null
say "the suite ended with status $(cat "$out/exit-code") after $(cut -d' ' -f1 /proc/uptime) s; powering off"
sync
umount "$out"
echo o > /proc/sysrq-trigger
sleep 60
