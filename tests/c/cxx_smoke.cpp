// The header serves C++ too: this program includes it from C++17, runs a timer through a
// runtime and frees it. Built with -Wall -Wextra -Werror by `make test-c`.
#include <cstdio>
#include <memory>

#include "polyio.h"

int main() {
    polyio_runtime *raw = nullptr;
    if (polyio_runtime_new(nullptr, &raw) != POLYIO_STATUS_OK) return 1;
    std::unique_ptr<polyio_runtime, decltype(&polyio_runtime_free)> rt(raw, &polyio_runtime_free);
    if (polyio_timer(rt.get(), 1, 42) != POLYIO_STATUS_OK) return 1;
    polyio_completion c{};
    if (polyio_reap(rt.get(), &c, 1, 5000) != 1 || c.user_data != 42 || c.op != POLYIO_OP_TIMER) return 1;
    std::printf("c++: timer completed through polyio %s\n", polyio_version_string());
    return 0;
}
