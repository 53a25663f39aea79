// Tensor: dtype, shape, contiguous storage shared between views.
// Views (reshape, row slices) share storage; a tensor may also wrap memory it does not own
// (a parameter inside a flat arena), in which case the owner must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"

namespace foldmoe {

enum class DType { F32, F64, I32, I64, U8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  // Wraps memory owned elsewhere (e.g. a flat parameter arena).
  static Tensor wrap(void* data, const Shape& shape, DType dtype = DType::F32);

  bool defined() const { return storage_ != nullptr || external_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  template <typename T>
  T* data() {
    FOLDMOE_CHECK(dtype_of<T>() == dtype_, "tensor is {}, accessed as {}", dtype_name(dtype_),
                  dtype_name(dtype_of<T>()));
    return reinterpret_cast<T*>(raw());
  }
  template <typename T>
  const T* data() const {
    return const_cast<Tensor*>(this)->data<T>();
  }
  void* raw();

  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor rows(int64_t begin, int64_t end) const;
  // A deep copy with its own storage.
  Tensor clone() const;
  void fill_zero();

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  std::shared_ptr<std::vector<std::byte>> storage_;
  void* external_ = nullptr;
  size_t offset_ = 0;  // bytes
};

}  // namespace foldmoe
