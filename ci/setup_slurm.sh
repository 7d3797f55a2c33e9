#!/bin/bash
# A single-node SLURM cluster on this machine (127.0.0.1) for testing `snakemake --profile slurm`:
# Debian's slurm-wlm + munge, no systemd, no cgroups, no accounting database. Needs root.
# Usage: bash ci/setup_slurm.sh   (state in $SLURM_DIR, default .slurm/; idempotent: a rerun
# restarts the daemons it started, and refuses when SLURM daemons it did not start are running)
set -euo pipefail
dir=$(realpath -m "${SLURM_DIR:-.slurm}")
packages="slurmctld slurmd slurm-client munge"

# Stop the daemons this state directory started (by their pid files), and nothing else: a
# slurmctld or slurmd from anywhere else may serve someone's cluster, so refuse to go on.
for daemon in slurmd slurmctld; do
  pid=$(cat "$dir/run/$daemon.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
  fi
done
for daemon in slurmctld slurmd; do
  # Live processes only: a daemon's exited launcher can linger as a zombie of the same name.
  if others=$(pgrep -x -r R,S,D,T "$daemon"); then
    echo "setup_slurm: a $daemon not started from $dir is running (pid $(echo $others)); it" \
      "may serve another cluster, so it is left alone. Stop it yourself, or set SLURM_DIR to" \
      "the state directory that started it." >&2
    exit 1
  fi
done
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
  echo "setup_slurm: /etc/slurm/slurm.conf is a site configuration; not replacing it." >&2
  exit 1
fi

if ! dpkg -s $packages >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
mkdir -p "$dir"/{state,spool,log,run} /etc/slurm
host=$(hostname -s)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=salmu-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Every finished job is appended here: the tests read it to see what went through sbatch.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory takes the whole node.
DefMemPerCPU=1024
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# squeue must still list finished jobs when Snakemake polls (it polls with squeue here).
MinJobAge=300
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# The executor's in-job srun drops SLURM_CONF, so the config must sit at the default path.
ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
mkdir -p /run/munge && chown munge:munge /run/munge
# munge only authenticates; one already running (anyone's) serves this cluster too.
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)$' && exit 0
  sleep 1
done
echo "setup_slurm: the node did not come up; see $dir/log/" >&2
exit 1
