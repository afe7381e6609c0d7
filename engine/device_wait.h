// The one way the host waits for a device: wait_until polls, and between polls
// asks the installed watch whether to go on.
//
// Why: a host wait on a GPU stream (the loss read, a norm, a copy back) also waits
// for every NCCL collective queued before it; a peer that died or a cut link would
// block it forever in cudaStreamSynchronize. The NCCL communicator installs a watch
// that polls ncclCommGetAsyncError and the collective timeout and, on a fault,
// aborts the communicator and throws, naming what was waited for -- so every wait,
// not only the communicator's own, ends in bounded time. With no watch installed
// (one GPU, no peers) a wait polls until it is done.
//
// No CUDA header here: the polling is plain C++, tested on the CPU with fakes.
#pragma once

#include <functional>
#include <string>

namespace coco {

// Called between polls with what is waited for and the seconds waited so far;
// ends the wait by throwing.
using DeviceWaitWatch = std::function<void(const std::string& what, double waited_s)>;

// Installs `watch` for every later wait of this process (empty: none); returns the
// one it replaces.
DeviceWaitWatch set_device_wait_watch(DeviceWaitWatch watch);

// Polls `done` until it returns true. Between polls: the installed watch, then a
// pause that grows from nothing to 100 microseconds (short waits stay short, long
// ones do not burn a core).
void wait_until(const std::function<bool()>& done, const std::string& what);

}  // namespace coco
