// A time-bounded mutation fuzzer for the parsers, for builds without libFuzzer (gcc):
//
//   fuzz_parsers TARGET SECONDS SEED_FILE...
//
// A relative SEED_FILE is read from the reference data: $HNSTUDIO_REFERENCE_DIR, else the
// folder CMake configured (as tests/support/TestSupport.h does for the other suites).
//
// TARGET is unpickler, torch-archive or safetensors. Inputs are the seeds mutated by byte
// flips, byte sets, interesting integers (lengths and offsets that overflow), deletions,
// duplications and splices between seeds. Run under AddressSanitizer, a memory error aborts;
// an exception other than studio::Error escapes and fails the run. With clang, the same
// targets build as libFuzzer binaries (fuzz_libfuzzer.cpp, -DHNSTUDIO_LIBFUZZER=ON).

#include "FuzzTargets.h"

#include "core/io/ZipArchive.h"

#include <QByteArray>
#include <QCoreApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using Target = int (*)(const uint8_t*, size_t);

Target targetNamed(const std::string& name)
{
    if (name == "unpickler") {
        return studio::fuzz::unpicklerTarget;
    }
    if (name == "torch-archive") {
        return studio::fuzz::torchArchiveTarget;
    }
    if (name == "safetensors") {
        return studio::fuzz::safeTensorsTarget;
    }
    return nullptr;
}

void putInteresting(QByteArray& input, std::mt19937_64& random)
{
    static const uint64_t kValues[] = {
        0,      1,         0x7f,       0x80,       0xff,
        0x7fff, 0xffff,    0x7fffffff, 0xffffffff, 0x7fffffffffffffffull,
        ~0ull,  1ull << 40};
    const uint64_t value = kValues[random() % (sizeof kValues / sizeof kValues[0])];
    const int width = 1 << (random() % 4); // 1, 2, 4 or 8 bytes
    if (input.size() < width) {
        return;
    }
    const auto at = static_cast<qsizetype>(random() % (input.size() - width + 1));
    std::memcpy(input.data() + at, &value, static_cast<size_t>(width));
}

QByteArray mutate(const std::vector<QByteArray>& seeds, std::mt19937_64& random)
{
    QByteArray input = seeds[random() % seeds.size()];
    const int rounds = 1 + static_cast<int>(random() % 6);
    for (int round = 0; round < rounds && !input.isEmpty(); ++round) {
        const auto at = static_cast<qsizetype>(random() % input.size());
        switch (random() % 6) {
        case 0:
            input[at] = static_cast<char>(input[at] ^ (1 << (random() % 8)));
            break;
        case 1:
            input[at] = static_cast<char>(random());
            break;
        case 2:
            putInteresting(input, random);
            break;
        case 3:
            input.remove(at, static_cast<qsizetype>(1 + random() % 64));
            break;
        case 4:
            input.insert(at, input.mid(static_cast<qsizetype>(random() % input.size()), 32));
            break;
        default: {
            const QByteArray& other = seeds[random() % seeds.size()];
            input = input.left(at) + other.mid(static_cast<qsizetype>(random() % other.size()));
            break;
        }
        }
    }
    return input;
}

// The unpickler's seeds are the pickles inside torch files, so a .pt seed gives its data.pkl.
QByteArray seedFor(const std::string& target, const QByteArray& bytes)
{
    if (target != "unpickler" || !bytes.startsWith("PK")) {
        return bytes;
    }
    const studio::io::ZipReader zip(bytes.constData(), static_cast<size_t>(bytes.size()),
                                    QStringLiteral("seed"));
    const studio::io::ZipReader::Record* pickle = zip.find(QStringLiteral("data.pkl"));
    return QByteArray(zip.recordData(*pickle, false), static_cast<qsizetype>(pickle->size));
}

QString seedPath(const QString& argument)
{
    if (QDir::isAbsolutePath(argument)) {
        return argument;
    }
    const QString fromEnvironment = qEnvironmentVariable("HNSTUDIO_REFERENCE_DIR");
    const QString referenceDir =
        fromEnvironment.isEmpty() ? QStringLiteral(HNSTUDIO_REFERENCE_DIR) : fromEnvironment;
    return QDir(referenceDir).filePath(argument);
}

} // namespace

int main(int argc, char** argv)
{
    QCoreApplication app(argc, argv);
    if (argc < 4 || !targetNamed(argv[1])) {
        std::fprintf(stderr, "usage: %s unpickler|torch-archive|safetensors SECONDS SEED...\n",
                     argv[0]);
        return 2;
    }
    const Target target = targetNamed(argv[1]);
    const double seconds = std::atof(argv[2]);

    std::vector<QByteArray> seeds;
    for (int i = 3; i < argc; ++i) {
        QFile file(seedPath(QString::fromLocal8Bit(argv[i])));
        if (file.open(QIODevice::ReadOnly)) {
            seeds.push_back(seedFor(argv[1], file.readAll()));
        }
    }
    if (seeds.empty()) {
        std::fprintf(stderr, "no readable seed files\n");
        return 2;
    }

    std::mt19937_64 random(20261203);
    QElapsedTimer timer;
    timer.start();
    long long runs = 0;
    while (timer.elapsed() < seconds * 1000.0) {
        const QByteArray input = mutate(seeds, random);
        target(reinterpret_cast<const uint8_t*>(input.constData()),
               static_cast<size_t>(input.size()));
        ++runs;
    }
    std::printf("%s: %lld inputs in %.0f s, no crash\n", argv[1], runs, seconds);
    return 0;
}
