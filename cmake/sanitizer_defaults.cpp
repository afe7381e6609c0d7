// Runtime defaults of the sanitizer build (COCO_SANITIZE, cmake/sanitizers.cmake),
// compiled into every program that links coco. The sanitizer runtimes call these
// weak hooks at start-up; ASAN_OPTIONS / UBSAN_OPTIONS / LSAN_OPTIONS in the
// environment still override them.
//
// Suppressions cover third-party code only, each with the reason. coco's own code
// gets none: a report there is a bug to fix.
extern "C" {

const char* __asan_default_options() {
  // Leaks are checked at exit (LeakSanitizer, on by default on Linux x86-64).
  return "detect_leaks=1:check_initialization_order=1:strict_init_order=1";
}

const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

const char* __lsan_default_suppressions() {
  return
      // Open MPI (and its PMIx/hwloc/libevent components, dlopen'ed by MPI_Init) keeps
      // process-lifetime allocations that it does not free in MPI_Finalize.
      "leak:libmpi.so\n"
      "leak:libopen-pal.so\n"
      "leak:libopen-rte.so\n"
      "leak:libpmix.so\n"
      "leak:libhwloc.so\n"
      "leak:libevent\n"
      "leak:mca_\n";
}

}  // extern "C"
