#pragma once

// Process-wide settings that make CPU training fast on small machines. Call
// configureCpuRuntime() first thing in main(), before any LibTorch work.
//
// Two settings matter, measured on the 2-core development machine with an SD1.5-shaped
// training step (tests/bench/README.md): together they take it from 9.3 s to 4.6 s.
// - OpenMP threads that spin while they wait for work steal the cores that OpenBLAS's own
//   threads need; passive waiting stops that. libgomp reads OMP_WAIT_POLICY only when it is
//   loaded, so the process re-executes itself once with the variable set.
// - glibc gives every block above 32 MiB its own mmap and unmaps it when freed, so each step
//   faults in and zeroes gigabytes of fresh pages again. Keeping freed memory in the heap
//   avoids that, for a few hundred MiB more resident memory.
// A user's own OMP_WAIT_POLICY or MALLOC_MMAP_MAX_ is respected.

namespace studio {

// May not return: re-executes the program (same arguments) with OMP_WAIT_POLICY=passive when
// the variable is unset. Set HNSTUDIO_DEFAULT_RUNTIME=1 to leave the process untouched.
void configureCpuRuntime(char** argv);

} // namespace studio
