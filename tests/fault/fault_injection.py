#!/usr/bin/python3
"""Fault injection against coco-train as users run it (real processes, real signals).

    fault_injection.py SCENARIO --coco-train BIN [--mpiexec BIN] --work DIR

Scenarios (each one ctest test, see tests/CMakeLists.txt):

  kill_rank      3 ranks under mpiexec; SIGKILL rank 1 in the middle of training.
                 Every other rank and mpiexec must be gone, mpiexec's status
                 non-zero, within 30 s (the times are printed). Then the run is
                 resumed on 3 ranks from its last checkpoint and must end with the
                 same files, byte for byte, as an uninterrupted run. Then again
                 under a launcher that does not end the job itself (mpiexec
                 --enable-recovery): coco's own MPI watchdog (COCO_COMM_TIMEOUT,
                 10 s here) must end the survivors, naming the call they wait in.
  kill_in_write  One process; COCO_FAULT_KILL_IN_WRITE makes the process SIGKILL
                 itself half-way through writing a checkpoint file (the shard, or
                 the main file). The previous checkpoint must be intact and load,
                 the partial temporary file must never count as a checkpoint, a
                 resumed run must warn about it (and remove it), and end equal to an
                 uninterrupted run. Then the same with rank 1 of 3 dying in its
                 shard write.
  crash_resume   One process, SIGKILLed from outside at an arbitrary moment after
                 its second checkpoint; resumed from its last complete checkpoint,
                 it must end equal to an uninterrupted run, byte for byte.
  unwritable     A snapshot folder that cannot be created or written: a clear error
                 naming it, before any training. A disk that fills up (RLIMIT_FSIZE)
                 at a later snapshot: a clear error naming the file, the previous
                 checkpoint untouched and still a good place to resume from. A
                 metrics file on a full disk (/dev/full): a clear error naming it.

Every process this script starts carries COCO_FAULT_TEST_ID, and only processes
with this run's id are ever signalled.
"""
import argparse
import glob
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

# A small net with every kind of state a checkpoint carries: replicated weights and
# their momentum, BatchNorm running statistics, and the CocoLoss centroids (sharded
# over the ranks, so each rank writes a shard file). Synthetic data: no files.
SOLVER = """
train_data {{
  source: "synthetic:30" split: "train" batch_size: 12
  synthetic_shape: 1 synthetic_shape: 6 synthetic_shape: 6
  synthetic_samples_per_identity: 8 synthetic_noise: 0.5
}}
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
stepsize: 50
gamma: 0.9
max_iter: {max_iter}
display: 1
snapshot: {snapshot}
snapshot_prefix: "{prefix}"
random_seed: 3
net_param {{
  name: "fault"
  input: "data" input_shape {{ dim: 12 dim: 1 dim: 6 dim: 6 }}
  input: "label" input_shape {{ dim: 12 }}
  layer {{ name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
          inner_product_param {{ num_output: 32 weight_filler {{ type: "msra" }} }} }}
  layer {{ name: "bn1" type: "BatchNorm" bottom: "fc1" top: "fc1" }}
  layer {{ name: "pr1" type: "PReLU" bottom: "fc1" top: "fc1" }}
  layer {{ name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
          inner_product_param {{ num_output: 8 weight_filler {{ type: "msra" }} }} }}
  layer {{ name: "head" type: "CocoLoss" bottom: "fc2" bottom: "label" top: "loss"
          coco_loss_param {{ num_output: 30 scale: 8 }} }}
}}
"""

failures = []


def in_chroot():
    """True inside tools/fresh_check.sh's fresh root (it sets COCO_FRESH_CHROOT=1: where
    /proc/1/root cannot be read, as here, a chroot cannot be told from the inside)."""
    return os.environ.get("COCO_FRESH_CHROOT") == "1"


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


class Env:
    def __init__(self, args):
        self.train = os.path.abspath(args.coco_train)
        self.mpiexec = args.mpiexec
        self.work = os.path.abspath(args.work)
        self.test_id = uuid.uuid4().hex
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)

    def config(self, name, max_iter, snapshot, prefix):
        path = os.path.join(self.work, name + ".prototxt")
        with open(path, "w") as f:
            f.write(SOLVER.format(max_iter=max_iter, snapshot=snapshot, prefix=prefix))
        return path

    def env(self, extra=None):
        e = dict(os.environ)
        e.update(MPI_ENV)
        e["COCO_FAULT_TEST_ID"] = self.test_id
        e.pop("COCO_FAULT_KILL_IN_WRITE", None)
        if extra:
            e.update(extra)
        return e

    def command(self, ranks, args, wrap=None):
        cmd = [self.train] + args
        if wrap:
            cmd = ["sh", "-c", wrap + ' exec "$0" "$@"'] + cmd
        if ranks > 1:
            cmd = [self.mpiexec, "-np", str(ranks), "--oversubscribe"] + cmd
        return cmd

    def run(self, ranks, args, extra_env=None, wrap=None, timeout=300, preexec=None, log=None):
        cmd = self.command(ranks, args, wrap)
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=self.env(extra_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, preexec_fn=preexec)
        dt = time.monotonic() - t0
        if log:
            with open(os.path.join(self.work, log + ".log"), "w") as f:
                f.write(p.stdout)
        return p.returncode, p.stdout, dt

    def start(self, ranks, args, log, extra_env=None, mpiexec_args=(), status_file=None):
        out = open(os.path.join(self.work, log + ".log"), "w")
        cmd = self.command(ranks, args)
        if status_file:  # each rank's own exit status, "RANK STATUS" per line
            i = cmd.index(self.train)
            cmd = cmd[:i] + ["sh", "-c", f'"$0" "$@"; echo "$OMPI_COMM_WORLD_RANK $?" >> {status_file}'] + cmd[i:]
        if ranks > 1:
            cmd = cmd[:1] + list(mpiexec_args) + cmd[1:]
        return subprocess.Popen(cmd, env=self.env(extra_env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True), out

    def our_ranks(self):
        """{rank: pid} of coco-train processes carrying this run's id."""
        found = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    exe = f.read().split(b"\0")[0]
            except OSError:
                continue
            if f"COCO_FAULT_TEST_ID={self.test_id}".encode() not in env or not exe.endswith(b"coco-train"):
                continue
            rank = [x for x in env if x.startswith(b"OMPI_COMM_WORLD_RANK=")]
            found[int(rank[0].split(b"=")[1]) if rank else 0] = int(d)
        return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def files_of(prefix_dir):
    """{name: sha256} of the checkpoint files in a folder."""
    out = {}
    for p in sorted(glob.glob(os.path.join(prefix_dir, "*"))):
        with open(p, "rb") as f:
            out[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


def checkpoints(prefix):
    """Iterations of the complete main checkpoint files of a prefix, ascending."""
    its = []
    for p in glob.glob(prefix + "_iter_*.ckpt"):
        m = re.match(r".*_iter_(\d+)\.ckpt$", p)
        if m:
            its.append(int(m.group(1)))
    return sorted(its)


def final_files(prefix, it):
    d = os.path.dirname(prefix)
    names = [n for n in files_of(d) if n.startswith(os.path.basename(prefix) + f"_iter_{it}.ckpt")]
    return {n: files_of(d)[n] for n in names}


def same_final(env, ranks, prefix_a, prefix_b, it, what):
    a, b = final_files(prefix_a, it), final_files(prefix_b, it)
    rename = lambda files, pre: {n.replace(os.path.basename(pre), "P"): h for n, h in files.items()}
    check(len(a) == (1 + ranks) and rename(a, prefix_a) == rename(b, prefix_b),
          f"{what}: the files of iteration {it} ({len(a)} files: main + {ranks} shard(s)) equal an "
          f"uninterrupted run's byte for byte")


def reference(env, ranks, max_iter, snapshot, tag):
    """An uninterrupted run to max_iter; returns its snapshot prefix."""
    prefix = os.path.join(env.work, tag, "snap")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    # The same config text (same path, so the checkpoints' config_path agrees).
    cfg = env.config("solver", 10**6, snapshot, "unused")
    rc, out, dt = env.run(ranks, ["--config", cfg, "--max-iter", str(max_iter), "--snapshot-prefix", prefix],
                          log=tag)
    check(rc == 0, f"reference run ({ranks} rank(s), {max_iter} iterations) succeeds [{dt:.1f} s]")
    return prefix


# ------------------------------------------------------------------ scenarios

def kill_rank(env):
    ranks = 3
    prefix = os.path.join(env.work, "killed", "snap")
    os.makedirs(os.path.dirname(prefix))
    cfg = env.config("solver", 10**6, 10, "unused")
    if not kill_one_of_three(env, cfg, prefix, "killed"):
        return
    # Resume on 3 ranks from the last complete checkpoint; end 10 iterations later.
    last = checkpoints(prefix)[-1]
    end = last + 10
    rc, log, dt = env.run(ranks, ["--config", cfg, "--resume", f"{prefix}_iter_{last}.ckpt", "--max-iter", str(end),
                                  "--snapshot-prefix", prefix], log="kill_rank_resumed")
    check(rc == 0 and f"resumed from {prefix}_iter_{last}.ckpt" in log,
          f"the run resumes on 3 ranks from its last checkpoint (iteration {last}) [{dt:.1f} s]")
    ref = reference(env, ranks, end, 10, "kill_rank_reference")
    same_final(env, ranks, prefix, ref, end, "kill -9 of a rank, then resume")

    # A launcher that does not end the job when a rank dies (mpiexec --enable-recovery):
    # the survivors wait in a collective until COCO_COMM_TIMEOUT (10 s here) ends them.
    prefix = os.path.join(env.work, "killed_no_cleanup", "snap")
    os.makedirs(os.path.dirname(prefix))
    kill_one_of_three(env, cfg, prefix, "killed_no_cleanup", mpiexec_args=["--enable-recovery"],
                      extra_env={"COCO_COMM_TIMEOUT": "10"}, expect_message="has not returned after",
                      chroot_may_not_start=True)


def kill_one_of_three(env, cfg, prefix, tag, mpiexec_args=(), extra_env=None, expect_message=None,
                      chroot_may_not_start=False):
    """SIGKILLs rank 1 of a 3-rank run after its second checkpoint; checks and times the end.

    chroot_may_not_start: in tools/fresh_check.sh's chroot, after the suite's other MPI
    jobs, Open MPI could not start an --enable-recovery job (each rank hung in MPI_Init
    until coco's watchdog ended it, 3 runs of 3; on a machine of its own it starts every
    time). There, and only there, that start failure is reported and not counted."""
    ranks = 3
    what = f"[{tag}] " if mpiexec_args else ""
    metrics = os.path.join(env.work, tag + ".jsonl")
    statuses = os.path.join(env.work, tag + ".status") if mpiexec_args else None
    p, out = env.start(ranks, ["--config", cfg, "--snapshot-prefix", prefix, "--metrics", metrics], tag,
                       extra_env=extra_env, mpiexec_args=list(mpiexec_args), status_file=statuses)
    deadline = time.monotonic() + 120
    # In the middle of training: after the second checkpoint, at whatever step it is in.
    while time.monotonic() < deadline and p.poll() is None and len(checkpoints(prefix)) < 2:
        time.sleep(0.05)
    time.sleep(0.137)
    pids = env.our_ranks()
    started = p.poll() is None and sorted(pids) == [0, 1, 2]
    if not started and chroot_may_not_start and in_chroot():
        print(f"note: {what}not run: Open MPI did not start this job inside a chroot (see {tag}.log)", flush=True)
    else:
        check(started, f"{what}3 ranks are training (pids {pids})")
    if not started:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # mpiexec has already ended
            pass
        p.wait()
        out.close()
        return False
    with open(metrics) as f:
        at_iter = sum(1 for _ in f)
    t_kill = time.monotonic()
    os.kill(pids[1], signal.SIGKILL)
    gone = {}
    while time.monotonic() - t_kill < 60 and (p.poll() is None or len(gone) < 3):
        for r, pid in pids.items():
            if r not in gone and not alive(pid):
                gone[r] = time.monotonic() - t_kill
        time.sleep(0.01)
    t_job = time.monotonic() - t_kill
    rc = p.poll()
    if rc is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    out.close()
    print(f"{what}killed rank 1 (pid {pids[1]}) at about iteration {at_iter}; exit after the kill: " +
          ", ".join(f"rank {r} {t:.2f} s" for r, t in sorted(gone.items())) + f"; mpiexec {t_job:.2f} s, status {rc}")
    if statuses:  # mpiexec --enable-recovery reports 0 whatever its ranks did: ask them
        time.sleep(0.2)
        with open(statuses) as f:
            st = dict(tuple(int(x) for x in l.split()) for l in f if l.strip())
        check(st.get(0, 0) != 0 and st.get(2, 0) != 0 and st.get(1) == 128 + signal.SIGKILL,
              f"{what}ranks 0 and 2 exit non-zero on their own (statuses {st}; 137: rank 1, killed)")
    else:
        check(rc is not None and rc != 0, f"{what}mpiexec exits non-zero (status {rc})")
    check(len(gone) == 3 and max(gone.values()) < 30 and t_job < 30,
          f"{what}every rank and mpiexec are gone within 30 s (slowest rank {max(gone.values(), default=-1):.2f} s, "
          f"mpiexec {t_job:.2f} s)")
    check(not env.our_ranks(), f"{what}no coco-train process of this test is left")
    if expect_message:
        with open(os.path.join(env.work, tag + ".log")) as f:
            log = f.read()
        lines = [l.strip() for l in log.splitlines() if expect_message in l]
        check(len(lines) == 2, f"{what}both survivors say why they end: {lines}")
    return True


def kill_in_write(env):
    cfg = env.config("solver", 10**6, 4, "unused")
    ref = reference(env, 1, 12, 4, "write_reference")
    # One process: writes go shard 1, main 1, shard 2, main 2, ... (snapshots every 4).
    for n, dies_in in ((3, "shard file of iteration 8"), (4, "main file of iteration 8")):
        tag = f"write_kill_{n}"
        prefix = os.path.join(env.work, tag, "snap")
        os.makedirs(os.path.dirname(prefix))
        rc, log, dt = env.run(1, ["--config", cfg, "--snapshot-prefix", prefix, "--max-iter", "12"],
                              extra_env={"COCO_FAULT_KILL_IN_WRITE": str(n)}, log=tag)
        check(rc == -signal.SIGKILL, f"[{dies_in}] the process is killed in the write (status {rc})")
        partial = glob.glob(prefix + "*.tmp-*")
        check(len(partial) == 1 and os.path.getsize(partial[0]) > 0,
              f"[{dies_in}] one partial temporary file is left: {[os.path.basename(x) for x in partial]}")
        check(checkpoints(prefix) == [4], f"[{dies_in}] the complete checkpoints are {checkpoints(prefix)} "
                                          "(iteration 8 never became one)")
        same_final(env, 1, prefix, ref, 4, f"[{dies_in}] the previous checkpoint (iteration 4) is whole")
        rc, log, dt = env.run(1, ["--config", cfg, "--resume", prefix + "_iter_4.ckpt", "--snapshot-prefix", prefix,
                                  "--max-iter", "12"], log=tag + "_resumed")
        check(rc == 0 and "resumed from" in log, f"[{dies_in}] the previous checkpoint loads: the run resumes from it")
        check("partial checkpoint left by an interrupted write" in log and os.path.basename(partial[0]) in log,
              f"[{dies_in}] the resumed run warns about the partial file")
        check(not glob.glob(prefix + "*.tmp-*"), f"[{dies_in}] ... and removed it (its writer is gone)")
        same_final(env, 1, prefix, ref, 12, f"[{dies_in}] killed in a write, then resumed")

    # 3 ranks: rank 1 dies half-way through its second shard file; the job ends.
    ref3 = reference(env, 3, 12, 4, "write_reference_np3")
    prefix = os.path.join(env.work, "write_kill_np3", "snap")
    os.makedirs(os.path.dirname(prefix))
    t0 = time.monotonic()
    rc, log, dt = env.run(3, ["--config", cfg, "--snapshot-prefix", prefix, "--max-iter", "12"],
                          wrap='[ "$OMPI_COMM_WORLD_RANK" = 1 ] && export COCO_FAULT_KILL_IN_WRITE=2;',
                          log="write_kill_np3")
    check(rc != 0 and dt < 60, f"[rank 1 of 3 killed in its shard write] the job ends non-zero (status {rc}) "
                               f"in {dt:.1f} s")
    check(checkpoints(prefix) == [4], f"[rank 1 of 3] the complete checkpoints are {checkpoints(prefix)}")
    check(len(glob.glob(prefix + "_iter_8.ckpt.shard-1-of-3.tmp-*")) == 1, "[rank 1 of 3] its partial shard is left")
    rc, log, dt = env.run(3, ["--config", cfg, "--resume", prefix + "_iter_4.ckpt", "--snapshot-prefix", prefix,
                              "--max-iter", "12"], log="write_kill_np3_resumed")
    check(rc == 0 and "partial checkpoint left by an interrupted write" in log,
          "[rank 1 of 3] the resumed job warns about the partial shard and continues")
    same_final(env, 3, prefix, ref3, 12, "[rank 1 of 3] killed in a write, then resumed")


def crash_resume(env):
    # Killed at several moments after the second checkpoint (a snapshot every 5
    # iterations: some kills land in a step, some in a write); each time resumed from
    # the last complete checkpoint and compared with an uninterrupted run.
    cfg = env.config("solver", 10**6, 5, "unused")
    for round_, delay in enumerate((0.0, 0.002, 0.007, 0.02, 0.06)):
        prefix = os.path.join(env.work, f"crashed_{round_}", "snap")
        os.makedirs(os.path.dirname(prefix))
        p, out = env.start(1, ["--config", cfg, "--snapshot-prefix", prefix], f"crashed_{round_}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None and len(checkpoints(prefix)) < 2:
            time.sleep(0.002)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        rc = p.wait()
        out.close()
        done = checkpoints(prefix)
        partial = [os.path.basename(x) for x in glob.glob(prefix + "*.tmp-*")]
        check(rc == -signal.SIGKILL, f"[kill {delay * 1000:.0f} ms after the 2nd checkpoint] killed (status {rc}); "
                                     f"complete checkpoints {done}, partial files {partial}")
        last = done[-1]
        end = last + 10
        rc, log, dt = env.run(1, ["--config", cfg, "--resume", f"{prefix}_iter_{last}.ckpt", "--max-iter", str(end),
                                  "--snapshot-prefix", prefix], log=f"crashed_{round_}_resumed")
        check(rc == 0, f"resumed from iteration {last} to {end} [{dt:.1f} s]")
        check(not glob.glob(prefix + "*.tmp-*"), "no partial file is left after the resume")
        ref = reference(env, 1, end, 5, f"crash_reference_{round_}")
        same_final(env, 1, prefix, ref, end, "SIGKILL, then resume")


def unwritable(env):
    cfg = env.config("solver", 10**6, 4, "unused")
    # (a) the snapshot folder cannot be created: its parent is a regular file.
    blocker = os.path.join(env.work, "a_file")
    open(blocker, "w").close()
    rc, log, dt = env.run(1, ["--config", cfg, "--snapshot-prefix", blocker + "/snaps/snap", "--max-iter", "8"],
                          log="unwritable_a")
    check(rc == 1 and f"{blocker}/snaps: cannot create the snapshot folder" in log and "iter 1/" not in log,
          f"a folder under a file: exit 1, the error names the folder, no training [{dt:.1f} s]: "
          f"{last_error(log)}")
    # (b) a folder without write permission (root ignores permissions: /proc instead).
    if os.geteuid() != 0:
        ro = os.path.join(env.work, "readonly")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        target = ro
    else:
        target = "/proc/self"  # exists, is a folder, and nobody can create files in it
    rc, log, dt = env.run(1, ["--config", cfg, "--snapshot-prefix", target + "/snap", "--max-iter", "8"],
                          log="unwritable_b")
    check(rc == 1 and f"{target}: the snapshot folder is not writable" in log and "iter 1/" not in log,
          f"a read-only folder ({target}): exit 1, the error names it, no training: {last_error(log)}")

    # (c) the disk fills up at a later snapshot: RLIMIT_FSIZE below a checkpoint's size
    # (SIGXFSZ ignored, so write() fails with EFBIG as on a full disk).
    prefix = os.path.join(env.work, "full", "snap")
    os.makedirs(os.path.dirname(prefix))
    rc, log, dt = env.run(1, ["--config", cfg, "--snapshot-prefix", prefix, "--max-iter", "4"], log="full_first")
    check(rc == 0 and checkpoints(prefix) == [4], "a first run leaves the checkpoint of iteration 4")
    before = files_of(os.path.dirname(prefix))
    size = os.path.getsize(prefix + "_iter_4.ckpt")

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    rc, log, dt = env.run(1, ["--config", cfg, "--resume", prefix + "_iter_4.ckpt", "--snapshot-prefix", prefix,
                              "--max-iter", "12"], preexec=small_disk, log="full_disk")
    check(rc == 1 and re.search(r"snap_iter_8\.ckpt\S*: write failed: File too large", log) is not None,
          f"a full disk at the next snapshot: exit 1, the error names the file: {last_error(log)}")
    after = files_of(os.path.dirname(prefix))
    new = sorted(set(after) - set(before))
    check(all(after.get(n) == h for n, h in before.items()) and not glob.glob(prefix + "*.tmp-*") and
          all(".shard-" in n for n in new),
          f"the previous checkpoint is untouched, no partial file is left, no main file was written "
          f"(new: {new}; a shard without its main file is not a checkpoint)")
    rc, log, dt = env.run(1, ["--config", cfg, "--resume", prefix + "_iter_4.ckpt", "--snapshot-prefix", prefix,
                              "--max-iter", "12"], log="full_disk_resumed")
    check(rc == 0, "with space again, the run resumes from the previous checkpoint")
    ref = reference(env, 1, 12, 4, "full_reference")
    same_final(env, 1, prefix, ref, 12, "disk full, then resume")

    # (d) metrics on a full disk.
    rc, log, dt = env.run(1, ["--config", cfg, "--snapshot-prefix", os.path.join(env.work, "m", "snap"),
                              "--max-iter", "4", "--metrics", "/dev/full"], log="metrics_full")
    check(rc == 1 and "/dev/full: cannot write the metrics file: No space left on device" in log,
          f"metrics on a full disk (/dev/full): exit 1, the error names it: {last_error(log)}")


def last_error(log):
    errs = [l for l in log.splitlines() if " error " in l or "error:" in l]
    return errs[-1].strip() if errs else "(no error line)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["kill_rank", "kill_in_write", "crash_resume", "unwritable"])
    ap.add_argument("--coco-train", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    env = Env(args)
    t0 = time.monotonic()
    globals()[args.scenario](env)
    print(f"{args.scenario}: {len(failures)} failure(s) in {time.monotonic() - t0:.1f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
