// What a rank does when a peer is lost (a collective past --comm-timeout, or NCCL
// reporting a dead peer), besides ending itself.
//
// Why: on a silent network partition Open MPI's runtime never notices. The daemon
// of a cut-off node (orted) and mpirun keep the abort or exit report they are
// sending in TCP's retransmission queue, which suspends keepalives, so they wait
// for the kernel's retransmission limit (about 15 minutes with Linux's default
// tcp_retries2) while every rank is already gone. The rank that detects the loss
// is the only one that knows, so it ends its own launcher daemon: its parent, when
// that is Open MPI's orted (SIGTERM: it kills its other local ranks and exits) or
// mpirun (SIGKILL: its SIGTERM path waits on the cut-off daemons). The rest of the
// job ends through mpirun's own abort, or through the same watchdog on the other
// side of the cut.
#pragma once

#include <string>

namespace coco {

// Ends the parent process when it is an MPI launcher daemon (orted, prted: SIGTERM;
// mpirun, mpiexec, orterun, prterun: SIGKILL); nothing otherwise (one process;
// Slurm's step daemon handles an exiting task itself). For the watchdog thread and
// the abort path: it reads /proc/PPID/comm and calls kill(), nothing collective.
void end_launcher_daemon();

// Set when a peer was found lost, so the job's abort path (MpiRuntime::abort_job)
// ends the launcher daemon too.
void note_peer_lost();
bool peer_lost();

// The other ranks and their hosts, for a message about a collective that waits on
// them ("rank 1 on node2, rank 2 on node3"; at most 8 named, then a count). Set once
// at start-up by the MPI communicator; empty in one process.
void set_peer_description(std::string text);
const std::string& peer_description();

}  // namespace coco
