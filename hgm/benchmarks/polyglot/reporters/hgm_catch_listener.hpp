// hgm's Catch2 (v2) listener: per-test-case results, signed, to the harness's report file (see
// ../report.py). The harness includes it in the exercise's test/tests-main.cpp, after catch.hpp.
// Catch constructs it when the test run starts, after every static initialiser: it reads the
// run's key from stdin then. SHA-256 is written out here because the test binary must not gain
// dependencies and the C++ standard library has none.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace hgm_verdict {

inline std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline std::array<unsigned char, 32> sha256(std::string const& data) {
    static const std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::vector<unsigned char> msg(data.begin(), data.end());
    msg.push_back(0x80);
    while (msg.size() % 64 != 56) msg.push_back(0);
    std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
    for (int i = 7; i >= 0; --i) msg.push_back(static_cast<unsigned char>(bits >> (8 * i)));
    for (std::size_t off = 0; off < msg.size(); off += 64) {
        std::uint32_t w[64];
        for (int i = 0; i < 16; ++i) {
            w[i] = (std::uint32_t(msg[off + 4 * i]) << 24) | (std::uint32_t(msg[off + 4 * i + 1]) << 16) |
                   (std::uint32_t(msg[off + 4 * i + 2]) << 8) | std::uint32_t(msg[off + 4 * i + 3]);
        }
        for (int i = 16; i < 64; ++i) {
            std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            std::uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    std::array<unsigned char, 32> out{};
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<unsigned char>(h[i] >> (24 - 8 * j));
    return out;
}

inline std::string hex(std::string const& bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char ch : bytes) {
        out += digits[ch >> 4];
        out += digits[ch & 15];
    }
    return out;
}

inline std::string hmac_sha256_hex(std::string const& key, std::string const& message) {
    std::string block = key.size() > 64 ? std::string() : key;
    if (key.size() > 64) {
        auto digest = sha256(key);
        block.assign(digest.begin(), digest.end());
    }
    block.resize(64, '\0');
    std::string inner, outer;
    for (char ch : block) {
        inner += static_cast<char>(ch ^ 0x36);
        outer += static_cast<char>(ch ^ 0x5c);
    }
    auto inner_digest = sha256(inner + message);
    auto digest = sha256(outer + std::string(inner_digest.begin(), inner_digest.end()));
    return hex(std::string(digest.begin(), digest.end()));
}

class Channel {
  public:
    Channel() {
        int ch;
        while ((ch = std::getchar()) != EOF && ch != '\n') key_ += static_cast<char>(ch);
        while (!key_.empty() && (key_.back() == '\r' || key_.back() == ' ')) key_.pop_back();
        const char* path = std::getenv("HGM_REPORT");
        if (!key_.empty() && path != nullptr && *path != '\0') out_ = std::fopen(path, "a");
        emit({"start", "catch2"});
    }
    void emit(std::vector<std::string> const& fields) {
        if (out_ == nullptr) return;
        std::string body = std::to_string(seq_++);
        for (auto const& field : fields) body += " " + field;
        std::string line = body + " " + hmac_sha256_hex(key_, body) + "\n";
        std::fwrite(line.data(), 1, line.size(), out_);
        std::fflush(out_);
    }

  private:
    std::string key_;
    std::FILE* out_ = nullptr;
    unsigned long seq_ = 0;
};

}  // namespace hgm_verdict

struct HgmVerdictListener : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;

    void testCaseEnded(Catch::TestCaseStats const& stats) override {
        bool passed = stats.totals.testCases.failed == 0;
        channel.emit({"test", hgm_verdict::hex(stats.testInfo.name), passed ? "passed" : "failed"});
        TestEventListenerBase::testCaseEnded(stats);
    }

    void testRunEnded(Catch::TestRunStats const& stats) override {
        bool ok = stats.totals.testCases.failed == 0 && !stats.aborting;
        channel.emit({"end", ok ? "ok" : "fail"});
        TestEventListenerBase::testRunEnded(stats);
    }

    hgm_verdict::Channel channel;
};

CATCH_REGISTER_LISTENER(HgmVerdictListener)
