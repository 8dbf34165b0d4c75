// Tests of the safetensors reader and writer: round trips, the reference files of the original
// implementation, dtype conversion, zero-copy lifetime and a table of hostile files. Also run
// under AddressSanitizer, which turns any out-of-bounds read of a hostile file into a failure.

#include "core/Error.h"
#include "core/io/SafeTensors.h"

#include <ATen/ATen.h>

#include <QFile>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QtEndian>
#include <QtTest>

#include <cstring>
#include <limits>

Q_DECLARE_METATYPE(at::Tensor)

using studio::io::SafeTensorsFile;
using studio::io::writeSafeTensors;

namespace {

constexpr qint64 kLengthFieldSize = 8;

QString referenceDir()
{
    const QByteArray fromEnvironment = qgetenv("HNSTUDIO_REFERENCE_DIR");
    if (!fromEnvironment.isEmpty()) {
        return QString::fromLocal8Bit(fromEnvironment);
    }
#ifdef HNSTUDIO_REFERENCE_DIR
    return QStringLiteral(HNSTUDIO_REFERENCE_DIR);
#else
    return {};
#endif
}

QByteArray lengthField(quint64 length)
{
    char bytes[kLengthFieldSize];
    qToLittleEndian(length, bytes);
    return QByteArray(bytes, kLengthFieldSize);
}

// A file made of `header` (taken as is, not validated) and `data`, with a matching length field.
QByteArray rawFile(const QByteArray& header, const QByteArray& data = {})
{
    return lengthField(static_cast<quint64>(header.size())) + header + data;
}

QByteArray entry(const char* name, const char* dtype, const char* shape, const char* offsets)
{
    return QByteArray("\"") + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
}

// Two well-formed tensors: alpha F32 [2, 3] at [0, 24] and beta I64 [2] at [24, 40].
QByteArray validHeader()
{
    return "{\"__metadata__\":{\"note\":\"hello\"}," + entry("alpha", "F32", "[2,3]", "[0,24]") +
           "," + entry("beta", "I64", "[2]", "[24,40]") + "}";
}

QByteArray validData()
{
    return QByteArray(40, '\0');
}

qint64 headerSizeOf(const QByteArray& file)
{
    return static_cast<qint64>(qFromLittleEndian<quint64>(file.constData()));
}

// Positions of JSON punctuation in the header: flipping one of them always breaks the JSON.
QList<qint64> structuralPositions(const QByteArray& file)
{
    QList<qint64> positions;
    const qint64 end = kLengthFieldSize + headerSizeOf(file);
    for (qint64 i = kLengthFieldSize; i < end; ++i) {
        if (QByteArray("{}[]:,\"").contains(file.at(i))) {
            positions.append(i);
        }
    }
    return positions;
}

QByteArray flipStructuralByte(QByteArray file, quint32 seed)
{
    const QList<qint64> positions = structuralPositions(file);
    QRandomGenerator random(seed);
    const qint64 position = positions.at(random.bounded(static_cast<int>(positions.size())));
    file[position] = static_cast<char>(file.at(position) ^ 0x80);
    return file;
}

at::Tensor floatRange(int64_t count)
{
    return at::arange(count, at::kFloat).mul(0.25).sub(1.0);
}

} // namespace

class TestSafeTensors : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void roundTripKeepsDtypesShapesAndMetadata();
    void writtenHeaderIsPaddedToEightBytes();
    void writerRejects_data();
    void writerRejects();
    void unknownNameThrows();
    void readsReferenceHypernetwork();
    void readsReferenceUnetForward();
    void convertsOnRead_data();
    void convertsOnRead();
    void zeroCopyTensorOutlivesFile();
    void misalignedTensorIsCopied();
    void hostileFilesAreRejected_data();
    void hostileFilesAreRejected();
    void everyTruncationIsRejected();
    void randomCorruptionNeverCrashes();

private:
    QString filePath(const QString& name) const { return m_dir.filePath(name); }
    QString writeRaw(const QString& name, const QByteArray& content) const;
    QByteArray writtenFile() const;

    QTemporaryDir m_dir;
};

void TestSafeTensors::initTestCase()
{
    QVERIFY2(m_dir.isValid(), qPrintable(m_dir.errorString()));
}

QString TestSafeTensors::writeRaw(const QString& name, const QByteArray& content) const
{
    const QString path = filePath(name);
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
        file.write(content) != content.size()) {
        qFatal("cannot write test file %s", qPrintable(path));
    }
    return path;
}

// The bytes of a small file produced by the writer, with metadata and mixed dtypes.
QByteArray TestSafeTensors::writtenFile() const
{
    const QString path = filePath(QStringLiteral("written.safetensors"));
    writeSafeTensors(
        path,
        {{QStringLiteral("weight"), floatRange(12).reshape({3, 4})},
         {QStringLiteral("flags"), at::arange(5, at::kLong).remainder(2).to(at::kBool)},
         {QStringLiteral("steps"), at::arange(3, at::kLong)},
         {QStringLiteral("half"), floatRange(4).to(at::kHalf)}},
        {{QStringLiteral("producer"), QStringLiteral("TestSafeTensors")}});

    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        qFatal("cannot read back %s", qPrintable(path));
    }
    return file.readAll();
}

void TestSafeTensors::roundTripKeepsDtypesShapesAndMetadata()
{
    const std::vector<std::pair<QString, at::Tensor>> tensors = {
        {QStringLiteral("f64"), at::linspace(-2.0, 2.0, 5, at::kDouble)},
        {QStringLiteral("f32"), floatRange(6).reshape({2, 3})},
        {QStringLiteral("f16"), floatRange(8).reshape({2, 2, 2}).to(at::kHalf)},
        {QStringLiteral("bf16"), floatRange(5).to(at::kBFloat16)},
        {QStringLiteral("scalar"), at::scalar_tensor(int64_t{-1234567890123}, at::kLong)},
        {QStringLiteral("i32"), at::arange(-3, 3, at::kInt)},
        {QStringLiteral("i16"), at::arange(-32768, 32768, 16384, at::kInt).to(at::kShort)},
        {QStringLiteral("i8"), at::arange(-128, 128, 64, at::kInt).to(at::kChar)},
        {QStringLiteral("u8"), at::arange(0, 256, 51, at::kInt).to(at::kByte)},
        {QStringLiteral("bool"), at::arange(6, at::kInt).remainder(3).eq(0).reshape({2, 3})},
        {QStringLiteral("empty"), at::empty({0, 3}, at::kFloat)},
        {QStringLiteral("transposed"), floatRange(12).reshape({3, 4}).t()},
        {QStringLiteral("f32scalar"), at::scalar_tensor(0.5, at::kFloat)},
        {QStringLiteral("unicode ✓ \"name\""), at::ones({1}, at::kFloat)},
    };
    const std::map<QString, QString> metadata = {
        {QStringLiteral("format"), QStringLiteral("pt")},
        {QStringLiteral("escapes"), QStringLiteral("a \"b\" \\ c\nd\te\x01")},
        {QStringLiteral("unicode"), QStringLiteral("αβγ – ✓")},
        {QStringLiteral("empty"), QString()},
    };
    const QString path = filePath(QStringLiteral("roundtrip.safetensors"));
    writeSafeTensors(path, tensors, metadata);

    const SafeTensorsFile file = SafeTensorsFile::open(path);
    QStringList expectedNames;
    for (const auto& [name, tensor] : tensors) {
        expectedNames.append(name);
    }
    QCOMPARE(file.names(), expectedNames);
    QCOMPARE(file.metadata(), metadata);

    for (const auto& [name, original] : tensors) {
        QVERIFY(file.contains(name));
        const studio::io::TensorInfo info = file.info(name);
        QCOMPARE(info.dtype, original.scalar_type());
        QCOMPARE(info.shape, original.sizes().vec());
        QCOMPARE(info.byteSize(), static_cast<qint64>(original.nbytes()));

        const at::Tensor read = file.tensor(name);
        QCOMPARE(read.scalar_type(), original.scalar_type());
        QCOMPARE(read.sizes().vec(), original.sizes().vec());
        QVERIFY2(at::equal(read, original), qPrintable(name));
    }
    QCOMPARE(file.tensor(QStringLiteral("scalar")).dim(), 0);
    QCOMPARE(file.tensor(QStringLiteral("scalar")).item<int64_t>(), int64_t{-1234567890123});
}

void TestSafeTensors::writtenHeaderIsPaddedToEightBytes()
{
    // Names of 1..8 characters shift the unpadded header length through every remainder.
    for (int length = 1; length <= kLengthFieldSize; ++length) {
        const QString path = filePath(QStringLiteral("padding.safetensors"));
        writeSafeTensors(path, {{QString(length, QLatin1Char('n')), at::ones({1}, at::kDouble)}});

        QFile file(path);
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QByteArray bytes = file.readAll();
        const qint64 headerSize = headerSizeOf(bytes);
        QCOMPARE(headerSize % 8, 0);
        QCOMPARE(bytes.size(), kLengthFieldSize + headerSize + 8);
        QVERIFY(bytes.mid(kLengthFieldSize, headerSize).trimmed().endsWith('}'));
    }
}

void TestSafeTensors::writerRejects_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<at::Tensor>("second");
    QTest::addColumn<QString>("expected");

    QTest::addRow("duplicate") << QStringLiteral("first") << at::ones({2}) << "twice";
    QTest::addRow("reserved") << QStringLiteral("__metadata__") << at::ones({2}) << "reserved";
    QTest::addRow("undefined") << QStringLiteral("second") << at::Tensor() << "undefined";
    QTest::addRow("complex") << QStringLiteral("second") << at::ones({2}, at::kComplexFloat)
                             << "not supported";
}

void TestSafeTensors::writerRejects()
{
    QFETCH(QString, name);
    QFETCH(at::Tensor, second);
    QFETCH(QString, expected);

    const QString path = filePath(QStringLiteral("rejected.safetensors"));
    try {
        writeSafeTensors(path, {{QStringLiteral("first"), at::ones({2})}, {name, second}});
    } catch (const studio::Error& error) {
        QVERIFY2(error.message().contains(expected), qPrintable(error.message()));
        QVERIFY2(error.message().contains(QStringLiteral("rejected.safetensors")),
                 qPrintable(error.message()));
        QVERIFY(!QFile::exists(path));
        return;
    }
    QFAIL("no studio::Error thrown");
}

void TestSafeTensors::unknownNameThrows()
{
    const QString path =
        writeRaw(QStringLiteral("known.safetensors"), rawFile(validHeader(), validData()));
    const SafeTensorsFile file = SafeTensorsFile::open(path);
    QVERIFY(!file.contains(QStringLiteral("gamma")));

    for (int call = 0; call < 2; ++call) {
        try {
            if (call == 0) {
                file.info(QStringLiteral("gamma"));
            } else {
                file.tensor(QStringLiteral("gamma"));
            }
            QFAIL("no studio::Error thrown");
        } catch (const studio::Error& error) {
            QVERIFY2(error.message().contains(QStringLiteral("'gamma'")),
                     qPrintable(error.message()));
        }
    }
}

void TestSafeTensors::readsReferenceHypernetwork()
{
    const QString path = referenceDir() + QStringLiteral("/hypernetworks/a_linear_121.safetensors");
    if (!QFile::exists(path)) {
        QSKIP("reference data not found; set HNSTUDIO_REFERENCE_DIR");
    }

    const SafeTensorsFile file = SafeTensorsFile::open(path);
    const QStringList names = file.names();
    QCOMPARE(names.size(), 65);
    QCOMPARE(names.first(), QStringLiteral("context_12"));
    QCOMPARE(names.at(1), QStringLiteral("context_16"));
    QCOMPARE(names.last(), QStringLiteral("hn.20.1.linear.1.bias"));
    QCOMPARE(file.metadata().at(QStringLiteral("pt_file")), QStringLiteral("a_linear_121.pt"));

    const studio::io::TensorInfo weight = file.info(QStringLiteral("hn.12.0.linear.0.weight"));
    QCOMPARE(weight.dtype, at::kFloat);
    QCOMPARE(weight.shape, (std::vector<int64_t>{24, 12}));
    QCOMPARE(weight.begin, 40320);
    QCOMPARE(weight.end, 41472);

    const at::Tensor context = file.tensor(QStringLiteral("context_12"));
    QCOMPARE(context.sizes().vec(), (std::vector<int64_t>{2, 16, 12}));
    QCOMPARE(context.flatten()[0].item<float>(), 0.2873219847679138f);
    QCOMPARE(context.flatten()[2].item<float>(), -0.8229788541793823f);
    QCOMPARE(file.tensor(QStringLiteral("hn.12.0.linear.0.bias")).abs().sum().item<float>(), 0.0f);
}

void TestSafeTensors::readsReferenceUnetForward()
{
    const QString path = referenceDir() + QStringLiteral("/unet/unet_sd1_forward.safetensors");
    if (!QFile::exists(path)) {
        QSKIP("reference data not found; set HNSTUDIO_REFERENCE_DIR");
    }

    const SafeTensorsFile file = SafeTensorsFile::open(path);
    const QStringList names = file.names();
    QCOMPARE(names.size(), 12);
    QCOMPARE(names.mid(0, 3), (QStringList{QStringLiteral("x"), QStringLiteral("timesteps"),
                                           QStringLiteral("context")}));
    QCOMPARE(names.last(), QStringLiteral("out_hn_chain"));
    QCOMPARE(file.metadata().at(QStringLiteral("weights")),
             QStringLiteral("unet_sd1_weights.safetensors"));

    QCOMPARE(file.info(QStringLiteral("context")).shape, (std::vector<int64_t>{2, 77, 48}));
    QCOMPARE(file.info(QStringLiteral("x_nonsquare")).shape, (std::vector<int64_t>{1, 4, 16, 24}));

    const at::Tensor timesteps = file.tensor(QStringLiteral("timesteps"));
    QCOMPARE(timesteps[0].item<float>(), 999.0f);
    QCOMPARE(timesteps[1].item<float>(), 321.25f);
    const at::Tensor x = file.tensor(QStringLiteral("x"), at::kDouble);
    QCOMPARE(x.scalar_type(), at::kDouble);
    QCOMPARE(x.flatten()[0].item<double>(), static_cast<double>(1.6759694814682007f));
    QCOMPARE(file.tensor(QStringLiteral("out_hn_chain")).flatten()[1].item<float>(),
             0.04035801440477371f);
}

void TestSafeTensors::convertsOnRead_data()
{
    QTest::addColumn<int>("stored");
    QTest::addColumn<int>("target");

    QTest::addRow("halfToFloat") << int(at::kHalf) << int(at::kFloat);
    QTest::addRow("bfloatToFloat") << int(at::kBFloat16) << int(at::kFloat);
    QTest::addRow("halfToDouble") << int(at::kHalf) << int(at::kDouble);
    QTest::addRow("floatToHalf") << int(at::kFloat) << int(at::kHalf);
    QTest::addRow("longToFloat") << int(at::kLong) << int(at::kFloat);
}

void TestSafeTensors::convertsOnRead()
{
    QFETCH(int, stored);
    QFETCH(int, target);
    const auto storedType = static_cast<c10::ScalarType>(stored);
    const auto targetType = static_cast<c10::ScalarType>(target);

    // Includes values half cannot hold exactly, its largest finite value and a subnormal.
    const at::Tensor values =
        at::cat({floatRange(7).mul(1.37), at::tensor({65504.0f, 6.0e-8f, -0.0f})});
    const at::Tensor original = values.to(storedType).reshape({2, 5});
    const QString path = filePath(QStringLiteral("convert.safetensors"));
    writeSafeTensors(path, {{QStringLiteral("values"), original}});

    const SafeTensorsFile file = SafeTensorsFile::open(path);
    const at::Tensor converted = file.tensor(QStringLiteral("values"), targetType);
    QCOMPARE(converted.scalar_type(), targetType);
    QVERIFY(at::equal(converted, original.to(targetType)));

    const at::Tensor same = file.tensor(QStringLiteral("values"), storedType);
    QCOMPARE(same.scalar_type(), storedType);
    QVERIFY(at::equal(same, original));
}

void TestSafeTensors::zeroCopyTensorOutlivesFile()
{
    const at::Tensor expected = floatRange(64).reshape({8, 8});
    const QString path = filePath(QStringLiteral("zerocopy.safetensors"));
    writeSafeTensors(path, {{QStringLiteral("weight"), expected}});

    at::Tensor first;
    {
        const SafeTensorsFile file = SafeTensorsFile::open(path);
        first = file.tensor(QStringLiteral("weight"));
        const at::Tensor second = file.tensor(QStringLiteral("weight"));
        // Two reads are views of the same mapped bytes; copies would not share an address.
        QCOMPARE(first.data_ptr(), second.data_ptr());
        QVERIFY(file.tensor(QStringLiteral("weight"), at::kDouble).data_ptr() != first.data_ptr());
    }

    // The SafeTensorsFile is gone; the tensor's deleter keeps the mapping. ASan (and the kernel)
    // would fault on an unmapped page here.
    QVERIFY(at::equal(first, expected));

    // The mapping is private: writing to the view never reaches the file.
    first.add_(1.0f);
    QVERIFY(at::equal(first, expected.add(1.0f)));
    QVERIFY(at::equal(SafeTensorsFile::open(path).tensor(QStringLiteral("weight")), expected));
}

void TestSafeTensors::misalignedTensorIsCopied()
{
    const at::Tensor flags = at::arange(3, at::kInt).eq(1);
    const at::Tensor values = at::linspace(-1.0, 1.0, 3, at::kDouble);
    const QString path = filePath(QStringLiteral("misaligned.safetensors"));
    writeSafeTensors(path, {{QStringLiteral("flags"), flags}, {QStringLiteral("values"), values}});

    const SafeTensorsFile file = SafeTensorsFile::open(path);
    QCOMPARE(file.info(QStringLiteral("values")).begin, 3);

    const at::Tensor first = file.tensor(QStringLiteral("values"));
    QVERIFY(at::equal(first, values));
    QCOMPARE(reinterpret_cast<quintptr>(first.data_ptr()) % sizeof(double), quintptr(0));
    QVERIFY(file.tensor(QStringLiteral("values")).data_ptr() != first.data_ptr());
    QVERIFY(at::equal(file.tensor(QStringLiteral("flags")), flags));
}

void TestSafeTensors::hostileFilesAreRejected_data()
{
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<QString>("expected");

    const QByteArray valid = rawFile(validHeader(), validData());
    const qint64 headerEnd = kLengthFieldSize + validHeader().size();
    const QByteArray alpha = entry("alpha", "F32", "[2,3]", "[0,24]");
    const auto withTensor = [](const QByteArray& tensorEntry, int dataSize = 64) {
        return rawFile("{" + tensorEntry + "}", QByteArray(dataSize, '\0'));
    };

    QTest::addRow("empty") << QByteArray() << "shorter";
    QTest::addRow("tooShort") << QByteArray("\x10\0\0\0\0", 5) << "shorter";
    QTest::addRow("lengthOnly") << lengthField(64) << "larger than";
    QTest::addRow("truncatedInHeader") << valid.left(headerEnd / 2) << "larger than";
    QTest::addRow("truncatedBeforeData") << valid.left(headerEnd) << "data_offsets";
    QTest::addRow("truncatedInData") << valid.left(valid.size() - 5) << "'beta'";
    QTest::addRow("lengthHuge") << lengthField(quint64(1) << 63) + "{}"
                                << "absurd";
    QTest::addRow("lengthAllOnes") << lengthField(~quint64(0)) + "{}"
                                   << "absurd";
    QTest::addRow("lengthAbsurd") << lengthField(200 * 1024 * 1024) + "{}"
                                  << "absurd";
    QTest::addRow("lengthBeyondFile")
        << lengthField(validHeader().size() + validData().size() + 1) + validHeader() + validData()
        << "larger than";
    QTest::addRow("zeroLength") << lengthField(0) + validData() << "JSON";
    QTest::addRow("notJson") << rawFile("hello world") << "JSON";
    QTest::addRow("binaryHeader") << rawFile(QByteArray("\xff\xfe\0\x01{}", 6)) << "JSON";
    QTest::addRow("trailingGarbage") << rawFile(validHeader() + "}", validData()) << "JSON";
    QTest::addRow("deepNesting") << rawFile(QByteArray(100000, '[') + QByteArray(100000, ']'))
                                 << "JSON";
    QTest::addRow("notObject") << rawFile("[1, 2, 3]") << "not an object";
    QTest::addRow("entryNotObject") << rawFile("{\"alpha\": 3}") << "'alpha'";
    QTest::addRow("missingDtype") << withTensor("\"alpha\":{\"shape\":[2],\"data_offsets\":[0,8]}")
                                  << "\"dtype\"";
    QTest::addRow("missingShape") << withTensor(
                                         "\"alpha\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}")
                                  << "\"shape\"";
    QTest::addRow("missingOffsets")
        << withTensor("\"alpha\":{\"dtype\":\"F32\",\"shape\":[2]}") << "\"data_offsets\"";
    QTest::addRow("dtypeNotString")
        << withTensor("\"alpha\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}") << "dtype";
    QTest::addRow("unknownDtype") << withTensor(entry("alpha", "F8_E4M3", "[2]", "[0,2]"))
                                  << "F8_E4M3";
    QTest::addRow("shapeNotArray") << withTensor(entry("alpha", "F32", "6", "[0,24]")) << "shape";
    QTest::addRow("negativeShape")
        << withTensor(entry("alpha", "F32", "[-2,3]", "[0,24]")) << "shape";
    QTest::addRow("fractionalShape")
        << withTensor(entry("alpha", "F32", "[1.5,4]", "[0,24]")) << "shape";
    QTest::addRow("textShape") << withTensor(entry("alpha", "F32", "[\"6\"]", "[0,24]")) << "shape";
    QTest::addRow("hugeDimension")
        << withTensor(entry("alpha", "F32", "[1e300]", "[0,24]")) << "shape";
    QTest::addRow("shapeOverflow")
        << withTensor(entry("alpha", "U8", "[1099511627776,1099511627776,1099511627776]", "[0,24]"))
        << "overflow";
    QTest::addRow("byteCountOverflow")
        << withTensor(entry("alpha", "F64", "[281474976710656,8192]", "[0,24]")) << "needs";
    QTest::addRow("offsetsOutside")
        << withTensor(entry("alpha", "F32", "[2,3]", "[0,1000]")) << "outside";
    QTest::addRow("offsetsFarOutside")
        << withTensor(entry("alpha", "U8", "[1]", "[4503599627370495,4503599627370496]"))
        << "outside";
    QTest::addRow("beginAfterEnd")
        << withTensor(entry("alpha", "F32", "[0]", "[24,0]")) << "begin is after end";
    QTest::addRow("negativeOffset")
        << withTensor(entry("alpha", "F32", "[4]", "[-8,8]")) << "data_offsets";
    QTest::addRow("oneOffset") << withTensor(entry("alpha", "F32", "[0]", "[0]")) << "data_offsets";
    QTest::addRow("textOffsets") << withTensor(entry("alpha", "F32", "[2]", "[\"0\",\"8\"]"))
                                 << "data_offsets";
    QTest::addRow("byteCountMismatch")
        << withTensor(entry("alpha", "F32", "[2,3]", "[0,20]")) << "needs";
    QTest::addRow("overlap") << rawFile("{" + alpha + "," + entry("beta", "F32", "[4]", "[16,32]") +
                                            "}",
                                        QByteArray(32, '\0'))
                             << "overlap";
    QTest::addRow("contained") << rawFile("{" + entry("outer", "U8", "[32]", "[0,32]") + "," +
                                              entry("inner", "U8", "[4]", "[8,12]") + "}",
                                          QByteArray(32, '\0'))
                               << "overlap";
    QTest::addRow("metadataNotObject") << rawFile("{\"__metadata__\":[\"a\"]}") << "__metadata__";
    QTest::addRow("metadataNotString") << rawFile("{\"__metadata__\":{\"step\":5}}") << "'step'";
    QTest::addRow("invalidBool") << rawFile("{" + entry("mask", "BOOL", "[3]", "[0,3]") + "}",
                                            QByteArray("\x00\x01\x02", 3))
                                 << "'mask'";

    const QByteArray written = writtenFile();
    for (quint32 seed : {1u, 2u, 3u, 4u, 5u}) {
        QTest::addRow("flippedHeader%u", seed) << flipStructuralByte(written, seed) << "JSON";
    }
    QByteArray flippedDtype = written;
    const qsizetype dtypeAt = flippedDtype.indexOf("\"F32\"");
    flippedDtype[dtypeAt + 2] = static_cast<char>(flippedDtype.at(dtypeAt + 2) ^ 0x04);
    QTest::addRow("flippedDtype") << flippedDtype << "unknown dtype";
}

void TestSafeTensors::hostileFilesAreRejected()
{
    QFETCH(QByteArray, content);
    QFETCH(QString, expected);

    const QString fileName =
        QStringLiteral("hostile_%1.safetensors").arg(QLatin1String(QTest::currentDataTag()));
    const QString path = writeRaw(fileName, content);
    try {
        const SafeTensorsFile file = SafeTensorsFile::open(path);
        for (const QString& name : file.names()) {
            file.tensor(name);
        }
    } catch (const studio::Error& error) {
        QVERIFY2(error.message().contains(fileName), qPrintable(error.message()));
        QVERIFY2(error.message().contains(expected), qPrintable(error.message()));
        return;
    } catch (const std::exception& error) {
        QFAIL(
            qPrintable(QStringLiteral("not a studio::Error: ") + QString::fromUtf8(error.what())));
    }
    QFAIL("no studio::Error thrown");
}

void TestSafeTensors::everyTruncationIsRejected()
{
    const QByteArray written = writtenFile();
    SafeTensorsFile::open(writeRaw(QStringLiteral("complete.safetensors"), written));

    for (qsizetype size = 0; size < written.size(); ++size) {
        const QString path = writeRaw(QStringLiteral("truncated.safetensors"), written.left(size));
        try {
            SafeTensorsFile::open(path);
        } catch (const studio::Error& error) {
            QVERIFY2(error.message().contains(QStringLiteral("truncated.safetensors")),
                     qPrintable(error.message()));
            continue;
        }
        QFAIL(qPrintable(QStringLiteral("truncation to %1 bytes was accepted").arg(size)));
    }
}

void TestSafeTensors::randomCorruptionNeverCrashes()
{
    // Random bytes anywhere in the length field and header: either a clean studio::Error or a
    // file whose every tensor reads; never a crash, another exception or (under ASan) a bad read.
    const QByteArray written = writtenFile();
    const qint64 headerEnd = kLengthFieldSize + headerSizeOf(written);
    QRandomGenerator random(20240611);
    int rejected = 0;

    for (int round = 0; round < 400; ++round) {
        QByteArray corrupt = written;
        const int flips = 1 + random.bounded(4);
        for (int i = 0; i < flips; ++i) {
            corrupt[random.bounded(static_cast<int>(headerEnd))] =
                static_cast<char>(random.bounded(256));
        }
        const QString path = writeRaw(QStringLiteral("corrupt.safetensors"), corrupt);
        try {
            const SafeTensorsFile file = SafeTensorsFile::open(path);
            for (const QString& name : file.names()) {
                file.tensor(name, at::kDouble);
            }
        } catch (const studio::Error&) {
            ++rejected;
        }
    }
    QVERIFY(rejected > 0);
}

QTEST_GUILESS_MAIN(TestSafeTensors)

#include "TestSafeTensors.moc"
