// How long one collective (MPI or NCCL) may block before the rank ends itself.
//
// Why one setting: a dead or cut-off peer leaves its partners waiting in a
// collective; the launcher does not always end the job (mpiexec --enable-recovery,
// a partition the runtime has not noticed yet), so coco bounds every wait itself.
// coco-train --comm-timeout sets it on every rank from the command line (an
// environment variable does not reach remote ranks unless the launcher forwards
// it); COCO_COMM_TIMEOUT is read when nothing set it; 0 turns the bound off.
//
// The default, 600 s, is longer than any wait a healthy job has (one rank writing a
// multi-GB checkpoint to a shared filesystem while the others wait; ranks reaching
// the first collective minutes apart while they open their data) and shorter than
// what a dead job may burn of a cluster allocation (NCCL's own 1,800 s).
#pragma once

namespace coco {

constexpr double kDefaultCommTimeoutSeconds = 600;

// The bound in seconds: set_comm_timeout_s's value, else COCO_COMM_TIMEOUT, else the default.
double comm_timeout_s();
// seconds >= 0 (0: never); call before the first collective.
void set_comm_timeout_s(double seconds);

}  // namespace coco
