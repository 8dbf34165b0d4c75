#include "core/data/Dataset.h"

#include "core/Error.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStringDecoder>

#include <algorithm>
#include <cmath>
#include <map>

namespace studio {

namespace {

// Keys of the dataset's random streams (streamSeed). Each decides one kind of thing, so a draw
// added to one never shifts another; the Trainer's keys are distinct tags of the same kind.
constexpr uint64_t kTemplateStream = 0x74656d706cULL; // the fixed template line of an image
constexpr uint64_t kPromptStream = 0x70726f6d7074ULL; // line, dropout and shuffle of one use
constexpr uint64_t kFlipStream = 0x666c6970ULL;       // whether an image is mirrored in an epoch
constexpr uint64_t kBatchStream = 0x6261746368ULL;    // the batches of an epoch

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
constexpr double kPi = 3.14159265358979323846; // M_PI is not standard C++

// SplitMix64's finalizer: a bijection that spreads every input bit over the whole word.
uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// SplitMix64 draws with our own integer and real mappings. <random>'s distributions and
// std::shuffle are implementation-defined, so they would give another run on another compiler.
class StreamRandom
{
public:
    explicit StreamRandom(uint64_t seed) : m_state(seed) {}

    uint64_t next()
    {
        m_state += kGolden;
        return mix(m_state);
    }

    // [0, 1) with 53 random bits, like Python's random.random().
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    // [0, n) without modulo bias: the 2^64 mod n smallest draws are rejected, so that every
    // residue is left equally often.
    size_t below(size_t n)
    {
        const uint64_t bound = static_cast<uint64_t>(n);
        const uint64_t threshold = (0 - bound) % bound;
        uint64_t value = next();
        while (value < threshold) {
            value = next();
        }
        return static_cast<size_t>(value % bound);
    }

    // Fisher-Yates, from the back as Python's random.shuffle.
    template <typename List> void shuffle(List& items)
    {
        for (size_t i = static_cast<size_t>(items.size()); i > 1; --i) {
            std::swap(items[i - 1], items[below(i)]);
        }
    }

private:
    uint64_t m_state;
};

uint64_t key(int64_t value)
{
    return static_cast<uint64_t>(value);
}

const QStringList& imageSuffixes()
{
    static const QStringList suffixes = {QStringLiteral("png"), QStringLiteral("jpg"),
                                         QStringLiteral("jpeg"), QStringLiteral("webp"),
                                         QStringLiteral("bmp")};
    return suffixes;
}

QString supportedFormats()
{
    return QStringLiteral("png, jpg, jpeg, webp or bmp");
}

// --- decoding and resampling ---------------------------------------------------------------

// 8-bit RGB, or an empty Mat with `why` set. The bytes go through QFile so that every path Qt
// can open works (OpenCV's file functions take narrow-character paths). Alpha is dropped
// without blending, as PIL's convert("RGB") does; JPEG EXIF orientation is applied.
cv::Mat decodeRgb(const QString& path, QString& why)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        why = QStringLiteral("cannot be opened: %1").arg(file.errorString());
        return {};
    }
    const QByteArray bytes = file.readAll();

    cv::Mat image;
    if (!bytes.isEmpty()) {
        try {
            const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1,
                              const_cast<char*>(bytes.constData()));
            image = cv::imdecode(raw, cv::IMREAD_COLOR);
        } catch (const cv::Exception&) {
            image.release(); // a decoder that throws instead of returning empty
        }
    }
    if (image.empty()) {
        why = QStringLiteral("is not a readable image (corrupt, empty, or a format OpenCV cannot "
                             "decode)");
        return {};
    }

    cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
    return image;
}

struct ResampleFilter
{
    double (*weight)(double);
    double support;
};

// PIL's bicubic kernel (a = -0.5), not OpenCV's (a = -0.75).
double bicubicWeight(double x)
{
    constexpr double a = -0.5;
    x = std::abs(x);
    if (x < 1.0) {
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    }
    if (x < 2.0) {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    }
    return 0.0;
}

double sinc(double x)
{
    if (x == 0.0) {
        return 1.0;
    }
    x *= kPi;
    return std::sin(x) / x;
}

double lanczosWeight(double x)
{
    return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

constexpr ResampleFilter kBicubic{bicubicWeight, 2.0};
constexpr ResampleFilter kLanczos{lanczosWeight, 3.0};

// PIL keeps weights as fixed point with 22 fraction bits (8 for the pixel, 2 for overshoot).
constexpr int kPrecisionBits = 22;

// For every output pixel: the first input pixel it reads and the fixed-point weights.
struct Taps
{
    std::vector<int> first;
    std::vector<std::vector<int32_t>> weights;
};

// The taps of PIL's ImagingResample along one axis. When shrinking, the kernel is widened by the
// scale, which low-pass filters the image; OpenCV's cubic and Lanczos resizes skip that and
// alias on large photos, so the originals' PIL resampling is reproduced here.
Taps resampleTaps(int inSize, int outSize, const ResampleFilter& filter)
{
    const double scale = static_cast<double>(inSize) / outSize;
    const double filterScale = std::max(scale, 1.0);
    const double support = filter.support * filterScale;
    const double inverse = 1.0 / filterScale;

    Taps taps;
    for (int out = 0; out < outSize; ++out) {
        const double center = (out + 0.5) * scale;
        const int first = std::max(0, static_cast<int>(center - support + 0.5));
        const int end = std::min(inSize, static_cast<int>(center + support + 0.5));

        std::vector<double> weights;
        double sum = 0.0;
        for (int x = first; x < end; ++x) {
            weights.push_back(filter.weight((x - center + 0.5) * inverse));
            sum += weights.back();
        }

        std::vector<int32_t> fixed;
        for (double weight : weights) {
            const double scaled = (sum != 0.0 ? weight / sum : weight) * (1 << kPrecisionBits);
            fixed.push_back(static_cast<int32_t>(scaled < 0 ? scaled - 0.5 : scaled + 0.5));
        }
        taps.first.push_back(first);
        taps.weights.push_back(std::move(fixed));
    }
    return taps;
}

uint8_t clampToByte(int32_t accumulator)
{
    return accumulator < 0 ? 0 : static_cast<uint8_t>(std::min(255, accumulator >> kPrecisionBits));
}

// One pass along x (horizontal) or y, 8-bit RGB in and out, rounding as PIL does.
cv::Mat resamplePass(const cv::Mat& in, int outSize, bool horizontal, const ResampleFilter& filter)
{
    const int inSize = horizontal ? in.cols : in.rows;
    const Taps taps = resampleTaps(inSize, outSize, filter);
    cv::Mat out(horizontal ? in.rows : outSize, horizontal ? outSize : in.cols, CV_8UC3);

    for (int y = 0; y < out.rows; ++y) {
        for (int x = 0; x < out.cols; ++x) {
            const int along = horizontal ? x : y;
            const std::vector<int32_t>& weights = taps.weights[along];
            int32_t sums[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1),
                               1 << (kPrecisionBits - 1)};
            for (size_t k = 0; k < weights.size(); ++k) {
                const int source = taps.first[along] + static_cast<int>(k);
                const cv::Vec3b& pixel =
                    horizontal ? in.at<cv::Vec3b>(y, source) : in.at<cv::Vec3b>(source, x);
                for (int c = 0; c < 3; ++c) {
                    sums[c] += pixel[c] * weights[k];
                }
            }
            cv::Vec3b& target = out.at<cv::Vec3b>(y, x);
            for (int c = 0; c < 3; ++c) {
                target[c] = clampToByte(sums[c]);
            }
        }
    }
    return out;
}

// PIL's Image.resize: horizontal pass first, then vertical; an unchanged axis is not touched.
cv::Mat resizeLikePil(const cv::Mat& image, int width, int height, const ResampleFilter& filter)
{
    cv::Mat result = image;
    if (result.cols != width) {
        result = resamplePass(result, width, /*horizontal=*/true, filter);
    }
    if (result.rows != height) {
        result = resamplePass(result, height, /*horizontal=*/false, filter);
    }
    return result;
}

// --- captions and templates ----------------------------------------------------------------

// The webui's caption from a file name: the stem without a leading ordering number ("001-",
// "12 "); with dataset.filename_word_regex, its matches joined by filename_join_string. As
// Python's findall, a pattern with groups contributes its first group.
QString captionFromFileName(const QString& stem, const DatasetSection& options)
{
    static const QRegularExpression numbersAtStart(QStringLiteral("^[-\\d]+\\s*"));
    QString text = stem;
    text.remove(numbersAtStart);
    if (options.filenameWordRegex.isEmpty()) {
        return text;
    }

    const QRegularExpression word(options.filenameWordRegex);
    const int group = word.captureCount() > 0 ? 1 : 0;
    QStringList tokens;
    QRegularExpressionMatchIterator matches = word.globalMatch(text);
    while (matches.hasNext()) {
        tokens << matches.next().captured(group);
    }
    return tokens.join(options.filenameJoinString);
}

// NAME.txt beside the image, read whole and not stripped, as the webui does. Python's text
// mode turns "\r\n" into "\n", so Windows-edited captions give the same prompt.
bool readCaptionFile(const QString& path, QString& caption, QString& why)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        why = QStringLiteral("its caption '%1' cannot be read: %2")
                  .arg(QFileInfo(path).fileName(), file.errorString());
        return false;
    }
    QStringDecoder decoder(QStringDecoder::Utf8);
    caption = decoder.decode(file.readAll());
    if (decoder.hasError()) {
        why = QStringLiteral("its caption '%1' is not UTF-8 text; save it as UTF-8")
                  .arg(QFileInfo(path).fileName());
        return false;
    }
    caption.replace(QStringLiteral("\r\n"), QStringLiteral("\n"));
    caption.replace(QLatin1Char('\r'), QLatin1Char('\n'));
    return true;
}

bool captionOf(const QFileInfo& image, const DatasetSection& options, QString& caption,
               QString& why)
{
    const QString captionPath = image.dir().filePath(image.completeBaseName() + ".txt");
    if (QFileInfo::exists(captionPath)) {
        return readCaptionFile(captionPath, caption, why);
    }
    caption = captionFromFileName(image.completeBaseName(), options);
    return true;
}

QString templateError(const QString& message)
{
    return QStringLiteral("dataset.template: ") + message +
           QStringLiteral("; give a .txt file with one prompt per line, or one of the built-in "
                          "templates: ") +
           builtInTemplateNames().join(QStringLiteral(", "));
}

// Where a template value is read from: the file itself, else the built-in of that name.
QString templatePath(const QString& value)
{
    if (QFileInfo(value).isFile()) {
        return value;
    }
    if (builtInTemplateNames().contains(value)) {
        return QStringLiteral(":/templates/%1.txt").arg(value);
    }
    const bool looksLikeFile = value.contains(QLatin1Char('/')) ||
                               value.contains(QLatin1Char('\\')) ||
                               value.endsWith(QLatin1String(".txt"), Qt::CaseInsensitive);
    if (looksLikeFile) {
        throw Error(templateError(QStringLiteral("the template file '%1' does not exist")
                                      .arg(QDir::toNativeSeparators(value))));
    }
    throw Error(templateError(
        QStringLiteral("'%1' is neither a template file nor a built-in template").arg(value)));
}

// --- sizes ---------------------------------------------------------------------------------

std::pair<int, int> trainingSize(int width, int height, const DatasetSection& options)
{
    if (options.noCrop) {
        return noCropSize(width, height, options.width, options.height);
    }
    return {options.width, options.height};
}

// The fixed size, or the no-crop box, in whole latent pixels.
void checkSizes(const DatasetSection& options, int latentFactor)
{
    for (const auto& [side, field] :
         {std::pair{options.width, "dataset.width"}, std::pair{options.height, "dataset.height"}}) {
        if (side <= 0 || side % latentFactor != 0) {
            throw Error(QStringLiteral("%1: %2 is not a multiple of %3, the model's latent "
                                       "factor; use a multiple of 64 such as 512")
                            .arg(QLatin1String(field))
                            .arg(side)
                            .arg(latentFactor));
        }
    }
}

// The checks that read no image: the folder exists, the regex compiles, the sizes fit the VAE.
void checkOptions(const DatasetSection& options, int latentFactor)
{
    if (options.folder.isEmpty() || !QFileInfo(options.folder).isDir()) {
        throw Error(QStringLiteral("dataset.folder: the image folder '%1' does not exist; set "
                                   "dataset.folder to a folder of %2 images")
                        .arg(QDir::toNativeSeparators(options.folder), supportedFormats()));
    }
    if (!QRegularExpression(options.filenameWordRegex).isValid()) {
        throw Error(QStringLiteral("dataset.filename_word_regex: '%1' is not a valid regular "
                                   "expression")
                        .arg(options.filenameWordRegex));
    }
    checkSizes(options, latentFactor);
}

QString noImagesMessage(const QString& folder, const std::vector<SkippedImage>& skipped)
{
    // The first reason usually explains them all (a folder of .heic files, say).
    const QString why =
        skipped.empty()
            ? QString()
            : QStringLiteral(" (%1 skipped; %2)").arg(skipped.size()).arg(skipped.front().reason);
    return QStringLiteral("dataset.folder: no usable images in '%1'%2; add %3 images there or "
                          "point dataset.folder at the folder that has them")
        .arg(QDir::toNativeSeparators(folder), why, supportedFormats());
}

// --- scanning ------------------------------------------------------------------------------

void addImage(const QFileInfo& file, const DatasetSection& options,
              std::vector<DatasetImage>& images, std::vector<SkippedImage>& skipped)
{
    QString why;
    const cv::Mat pixels = decodeRgb(file.filePath(), why);
    DatasetImage image;
    if (pixels.empty() || !captionOf(file, options, image.caption, why)) {
        skipped.push_back({file.filePath(), QStringLiteral("'%1' %2").arg(file.fileName(), why)});
        return;
    }

    image.path = file.filePath();
    image.sourceWidth = pixels.cols;
    image.sourceHeight = pixels.rows;
    std::tie(image.width, image.height) = trainingSize(pixels.cols, pixels.rows, options);
    images.push_back(std::move(image));
}

void scanFolder(const DatasetSection& options, std::vector<DatasetImage>& images,
                std::vector<SkippedImage>& skipped)
{
    QFileInfoList entries = QDir(options.folder).entryInfoList(QDir::Files, QDir::NoSort);
    // Code-point order, so the index of an image is the same on every system and locale.
    std::sort(entries.begin(), entries.end(),
              [](const QFileInfo& a, const QFileInfo& b) { return a.fileName() < b.fileName(); });

    for (const QFileInfo& entry : entries) {
        if (imageSuffixes().contains(entry.suffix().toLower())) {
            addImage(entry, options, images, skipped);
        }
    }
}

// --- batching ------------------------------------------------------------------------------

// One batch of the epoch's remainder (GroupedBatchSampler): a group picked with probability
// proportional to its leftover images (size mod batch), then `batch` of its images drawn with
// replacement, as the webui does.
std::vector<int> fillerBatch(const std::vector<std::vector<int>>& groups, int batch,
                             StreamRandom& random)
{
    size_t totalLeftover = 0;
    for (const std::vector<int>& group : groups) {
        totalLeftover += group.size() % static_cast<size_t>(batch);
    }

    size_t pick = random.below(totalLeftover);
    const std::vector<int>* chosen = &groups.front();
    for (const std::vector<int>& group : groups) {
        const size_t leftover = group.size() % static_cast<size_t>(batch);
        if (pick < leftover) {
            chosen = &group;
            break;
        }
        pick -= leftover;
    }

    std::vector<int> result;
    for (int i = 0; i < batch; ++i) {
        result.push_back((*chosen)[random.below(chosen->size())]);
    }
    return result;
}

} // namespace

std::pair<int, int> noCropSize(int width, int height, int boxWidth, int boxHeight)
{
    // Extension 4.4 literally, in doubles: shrink by r, or enlarge by amp when the image is
    // smaller than the box in both sides (then r is 1), truncate, round up to 64.
    double w = width;
    double h = height;
    const double r = std::max({1.0, w / boxWidth, h / boxHeight});
    const double amp = std::min(boxWidth / w, boxHeight / h);
    if (amp > 1.0) {
        w *= amp;
        h *= amp;
    }
    // The extension would give 0 for a side below 1 px (a 1 x 1000 strip); 64 keeps it usable.
    const auto roundUp = [](double side) {
        const int whole = static_cast<int>(side);
        return std::max(64, (whole + 63) / 64 * 64);
    };
    return {roundUp(w / r), roundUp(h / r)};
}

uint64_t streamSeed(uint64_t seed, std::initializer_list<uint64_t> keys)
{
    // Each key is mixed into the running hash, so order and count matter: {a, b} != {b, a}.
    uint64_t hash = mix(seed + kGolden);
    for (uint64_t k : keys) {
        hash = mix((hash ^ mix(k + kGolden)) + kGolden);
    }
    return hash;
}

QStringList builtInTemplateNames()
{
    return {QStringLiteral("style_filewords"),
            QStringLiteral("hypernetwork"),
            QStringLiteral("style"),
            QStringLiteral("subject"),
            QStringLiteral("subject_filewords"),
            QStringLiteral("none")};
}

QStringList readTemplateLines(const QString& templateValue)
{
    const QString path = templatePath(templateValue);
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        throw Error(templateError(QStringLiteral("cannot read '%1': %2")
                                      .arg(QDir::toNativeSeparators(path), file.errorString())));
    }

    // Stripped as the webui does; blank lines are dropped, where the webui would train an
    // image on an empty prompt now and then.
    QStringList lines;
    for (const QString& line : QString::fromUtf8(file.readAll()).split(QLatin1Char('\n'))) {
        if (!line.trimmed().isEmpty()) {
            lines << line.trimmed();
        }
    }
    if (lines.isEmpty()) {
        throw Error(templateError(QStringLiteral("'%1' has no lines; write prompts such as 'a "
                                                 "painting of [filewords], art by [name]'")
                                      .arg(QDir::toNativeSeparators(path))));
    }
    return lines;
}

Dataset::Dataset(const DatasetSection& options, const QString& hypernetworkName, uint64_t seed,
                 int latentFactor)
    : m_options(options), m_name(hypernetworkName), m_seed(seed)
{
    checkOptions(options, latentFactor);

    m_templateLines = readTemplateLines(options.templateFile);

    scanFolder(options, m_images, m_skipped);

    if (m_images.empty()) {
        throw Error(noImagesMessage(options.folder, m_skipped));
    }
}

bool Dataset::promptsVary() const
{
    return m_options.shuffleTags || m_options.tagDropout != 0.0;
}

QString Dataset::prompt(int index, int64_t epoch) const
{
    const DatasetImage& image = m_images.at(static_cast<size_t>(index));
    const auto fill = [&](QString line, const QString& filewords) {
        return line.replace(QStringLiteral("[filewords]"), filewords)
            .replace(QStringLiteral("[name]"), m_name);
    };
    const auto pickLine = [&](StreamRandom& random) {
        return m_templateLines.at(static_cast<int>(random.below(m_templateLines.size())));
    };

    if (!promptsVary()) {
        // The webui builds this text once at load: one line per image for the whole run.
        StreamRandom random(streamSeed(m_seed, {kTemplateStream, key(index)}));
        return fill(pickLine(random), image.caption);
    }

    // Rebuilt for every use as the webui's create_text: line, then dropout, then shuffle.
    StreamRandom random(streamSeed(m_seed, {kPromptStream, key(epoch), key(index)}));
    const QString line = pickLine(random);
    QStringList tags = image.caption.split(QLatin1Char(','));
    if (m_options.tagDropout != 0.0) {
        QStringList kept;
        for (const QString& tag : tags) {
            if (random.uniform() > m_options.tagDropout) {
                kept << tag;
            }
        }
        tags = kept;
    }
    if (m_options.shuffleTags) {
        random.shuffle(tags);
    }
    return fill(line, tags.join(QLatin1Char(',')));
}

bool Dataset::flipped(int index, int64_t epoch) const
{
    const double probability = m_options.flipProbability;
    if (probability <= 0.0 || probability >= 1.0) {
        return probability >= 1.0;
    }
    StreamRandom random(streamSeed(m_seed, {kFlipStream, key(epoch), key(index)}));
    return random.uniform() < probability;
}

at::Tensor Dataset::loadPixels(int index, bool flip) const
{
    const DatasetImage& image = m_images.at(static_cast<size_t>(index));
    QString why;
    cv::Mat pixels = decodeRgb(image.path, why);
    if (pixels.empty()) {
        // Readable at the scan, so the file changed while the run was starting.
        throw Error(QStringLiteral("'%1' %2").arg(QDir::toNativeSeparators(image.path), why));
    }

    pixels =
        resizeLikePil(pixels, image.width, image.height, m_options.noCrop ? kLanczos : kBicubic);
    if (flip) {
        cv::flip(pixels, pixels, /*flipCode=*/1);
    }
    if (!pixels.isContinuous()) {
        pixels = pixels.clone();
    }

    // x / 127.5 - 1 in double, then float32, as the webui's numpy code rounds.
    const at::Tensor hwc = at::from_blob(pixels.data, {pixels.rows, pixels.cols, 3}, at::kByte);
    return hwc.permute({2, 0, 1}).to(at::kDouble).div(127.5).sub(1.0).to(at::kFloat).contiguous();
}

std::vector<std::vector<int>> Dataset::epochBatches(int64_t epoch, int batchSize) const
{
    const int count = size();
    const int batch = std::clamp(batchSize, 1, count);
    StreamRandom random(streamSeed(m_seed, {kBatchStream, key(epoch)}));

    // Groups in size order, images in index order: the draws below see a fixed layout.
    std::map<std::pair<int, int>, std::vector<int>> bySize;
    for (int i = 0; i < count; ++i) {
        bySize[{m_images[i].width, m_images[i].height}].push_back(i);
    }

    std::vector<std::vector<int>> batches;
    std::vector<std::vector<int>> groups;
    for (auto& [dimensions, group] : bySize) {
        random.shuffle(group);
        for (size_t start = 0; start + batch <= group.size(); start += batch) {
            batches.emplace_back(group.begin() + start, group.begin() + start + batch);
        }
        groups.push_back(group);
    }

    const size_t wanted = static_cast<size_t>(count / batch);
    while (batches.size() < wanted) {
        batches.push_back(fillerBatch(groups, batch, random));
    }
    random.shuffle(batches);
    return batches;
}

} // namespace studio
