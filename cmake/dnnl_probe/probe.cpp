// Links against oneDNN: the probe fails if the library cannot be linked, not only found.
#include <dnnl.h>

int main() { return dnnl_version() == nullptr ? 1 : 0; }
