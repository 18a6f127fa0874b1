// Built by tests/test_emulated_cuda.py against the installed torch (g++, torch's headers), loaded
// before torch by tests/cuda_emulation/emucuda.py. A CPU-only torch refuses tensors whose device
// is CUDA in autograd and in device guards; this registers c10's no-op device guard for CUDA and
// CUDA hooks that report a CUDA build with no device available, so the emulated tensors (CPU
// data, device "cuda:0") pass through the engine. No CUDA kernel exists or runs.
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/FakeGuardImpl.h>

C10_REGISTER_GUARD_IMPL(CUDA, c10::impl::FakeGuardImpl<c10::DeviceType::CUDA>);

namespace at {
namespace longtail_emulation {
struct EmulatedCudaHooks : public at::CUDAHooksInterface {
  explicit EmulatedCudaHooks(at::CUDAHooksArgs) {}
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return false; }
  void init() const override {}
  bool hasPrimaryContext(DeviceIndex) const override { return true; }
  Allocator* getPinnedMemoryAllocator() const override { return c10::GetCPUAllocator(); }
  bool isPinnedPtr(const void*) const override { return false; }
};
}  // namespace longtail_emulation
C10_REGISTER_TYPED_CLASS(CUDAHooksRegistry, "CUDAHooks", longtail_emulation::EmulatedCudaHooks)
}  // namespace at
