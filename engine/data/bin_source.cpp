// "bin:FILE": the images of an insightface verification set (engine/data/verification_bin.h)
// as a data source, in file order. Sample 2i and 2i+1 are pair i; a sample's label is
// its pair's index (the set names no identities), and issame comes from the file
// itself (coco-eval --pairs bin:FILE, validation while training).
#include "engine/data/bin_source.h"

#include "engine/common.h"
#include "engine/data/image_source.h"
#include "engine/data/jpeg.h"
#include "engine/data/verification_bin.h"
#include "engine/proto/coco.pb.h"

namespace coco {
namespace {

class BinSource final : public ImageSource {
 public:
  BinSource(const std::string& path, const proto::DataSourceParameter& p, uint64_t seed)
      : ImageSource(p, seed), path_(path), set_(read_verification_bin(path)) {
    int h = 0, w = 0;
    const std::string& first = set_.images[0];
    jpeg_dimensions(reinterpret_cast<const uint8_t*>(first.data()), first.size(), where(0), &h, &w);
    finish_setup(static_cast<int64_t>(set_.images.size()), h, w, set_.pairs(), 1);
  }

  ~BinSource() override { stop_prefetch(); }

  const std::vector<bool>& issame() const { return set_.issame; }

  std::string describe() const override {
    return "bin:" + path_ + " (" + std::to_string(set_.images.size()) + " images, " + std::to_string(set_.pairs()) +
           " pairs)";
  }

 protected:
  void read_encoded(const std::vector<int64_t>& indices, std::vector<EncodedSample>* out) const override {
    out->assign(indices.size(), EncodedSample{});
    for (size_t i = 0; i < indices.size(); ++i) {
      const int64_t s = indices[i];
      EncodedSample& e = (*out)[i];
      e.where = where(s);
      e.label = static_cast<float>(s / 2);
      e.buffer = set_.images[static_cast<size_t>(s)];
      e.body_offset = 0;
      e.body_bytes = e.buffer.size();
    }
  }

 private:
  std::string where(int64_t index) const { return path_ + ": image " + std::to_string(index) + " (bins[" +
                                                  std::to_string(index) + "])"; }

  std::string path_;
  VerificationBin set_;
};

}  // namespace

VerificationSource open_verification_source(const std::string& path, const proto::DataSourceParameter& p,
                                            uint64_t seed, const std::string& origin) {
  VerificationSource out;
  out.images = open_for(origin, [&] { return std::make_unique<BinSource>(path, p, seed); });
  out.issame = static_cast<const BinSource&>(*out.images).issame();
  return out;
}

std::unique_ptr<DataSource> open_bin_source(const std::string& path, const proto::DataSourceParameter& p,
                                            uint64_t seed, const std::string& origin) {
  return open_verification_source(path, p, seed, origin).images;
}

}  // namespace coco
