#include "core/tensor.h"

#include <cstring>

#include <fmt/format.h>

namespace foldmoe {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape) FOLDMOE_CHECK(d >= 0, "negative dimension in {}", shape_str(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.storage_ = std::make_shared<std::vector<std::byte>>(size_t(shape_numel(shape)) * dtype_size(dtype));
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);  // std::vector value-initialises: already zero
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.external_ = data;
  return t;
}

int64_t Tensor::size(int64_t d) const {
  if (d < 0) d += dim();
  FOLDMOE_CHECK(d >= 0 && d < dim(), "dimension {} out of range for {}", d, shape_str(shape_));
  return shape_[size_t(d)];
}

void* Tensor::raw() {
  std::byte* base = storage_ ? storage_->data() : static_cast<std::byte*>(external_);
  return base + offset_;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  FOLDMOE_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows [{}, {}) of {}", begin,
                end, shape_str(shape_));
  Tensor t = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  t.offset_ += size_t(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(t.raw(), const_cast<Tensor*>(this)->raw(), nbytes());
  return t;
}

void Tensor::fill_zero() {
  if (nbytes()) std::memset(raw(), 0, nbytes());
}

}  // namespace foldmoe
