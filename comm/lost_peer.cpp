#include "comm/lost_peer.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace coco {

namespace {

// /proc/PID/comm, without the newline ("" if unreadable).
std::string command_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/comm", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return "";
  char name[64] = {0};
  const bool ok = std::fgets(name, sizeof(name), f) != nullptr;
  std::fclose(f);
  if (!ok) return "";
  name[std::strcspn(name, "\n")] = 0;
  return name;
}

std::atomic<bool>& lost() {
  static std::atomic<bool> flag{false};
  return flag;
}

std::string& peers() {
  static std::string text;
  return text;
}

}  // namespace

void end_launcher_daemon() {
  const pid_t parent = getppid();
  if (parent <= 1) return;
  const std::string name = command_of(parent);
  // A node daemon ends cleanly on SIGTERM (it kills its other local ranks and exits).
  for (const char* daemon : {"orted", "prted"})
    if (name == daemon) {
      kill(parent, SIGTERM);
      return;
    }
  // mpirun's SIGTERM path orders the remote daemons to kill their ranks and waits
  // for their replies, which a cut-off node never sends: measured, it was still
  // waiting 70 s later. SIGKILL ends it; its reachable daemons then lose their
  // connection to it (a reset, not a silence) and end their ranks.
  for (const char* launcher : {"mpirun", "mpiexec", "orterun", "prterun"})
    if (name == launcher) {
      sleep(1);  // mpirun forwards this rank's output: let it pass on the last message
      kill(parent, SIGKILL);
      return;
    }
}

void note_peer_lost() { lost().store(true); }
bool peer_lost() { return lost().load(); }

void set_peer_description(std::string text) { peers() = std::move(text); }
const std::string& peer_description() { return peers(); }

}  // namespace coco
