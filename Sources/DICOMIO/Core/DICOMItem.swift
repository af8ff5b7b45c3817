import CDCMTKShim

/// A dataset or sequence item inside a `DICOMFile` (a borrowed `DcmItem*`); keeps its file alive.
public struct DICOMItem {
    let pointer: UnsafeMutableRawPointer?
    let owner: AnyObject

    /// True when the attribute is present, even with an empty value.
    public func contains(_ tag: DICOMTag) -> Bool {
        tsr_item_contains(pointer, tag.group, tag.element) != 0
    }

    /// The value as text (all values joined by `\`), or nil when absent.
    public func string(_ tag: DICOMTag) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        var n = tsr_item_string(pointer, tag.group, tag.element, &buffer, buffer.count)
        if n < 0 { return nil }
        if Int(n) >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            n = tsr_item_string(pointer, tag.group, tag.element, &buffer, buffer.count)
        }
        return decodeCString(buffer)
    }

    /// The value as text with empty values mapped to nil.
    public func nonEmptyString(_ tag: DICOMTag) -> String? {
        guard let s = string(tag), !s.isEmpty else { return nil }
        return s
    }

    /// The values as numbers (DS, IS, US, SS, UL, SL, FL, FD ...), nil when absent.
    /// - Throws: `.invalidAttribute` when a value is not a number.
    public func numbers(_ tag: DICOMTag) throws(DICOMError) -> [Double]? {
        var values = [Double](repeating: 0, count: 16)
        var n = tsr_item_numbers(pointer, tag.group, tag.element, &values, values.count)
        if n == -1 || n < -2 { return nil }
        if n == -2 {
            throw DICOMError(.invalidAttribute, "\(tag) holds a value that is not a number: '\(string(tag) ?? "")'")
        }
        if Int(n) > values.count {
            values = [Double](repeating: 0, count: Int(n))
            n = tsr_item_numbers(pointer, tag.group, tag.element, &values, values.count)
        }
        return Array(values.prefix(Int(n)))
    }

    /// The first value as a number, nil when absent or empty.
    public func number(_ tag: DICOMTag) throws(DICOMError) -> Double? {
        try numbers(tag)?.first
    }

    /// The first value as an integer, nil when absent or empty.
    public func integer(_ tag: DICOMTag) throws(DICOMError) -> Int? {
        guard let v = try number(tag) else { return nil }
        // Beyond 2^53 a Double no longer holds every integer: such a value is corrupt, not a count.
        guard v == v.rounded(), abs(v) < 1e15, let n = Int(checked: v) else {
            throw DICOMError(.invalidAttribute, "\(tag) should be an integer but is \(v)")
        }
        return n
    }

    /// Raw value bytes of a binary attribute (host order for 16-bit words), copied.
    public func bytes(_ tag: DICOMTag) -> [UInt8]? {
        var pointer: UnsafePointer<UInt8>?
        let n = tsr_item_bytes(self.pointer, tag.group, tag.element, &pointer)
        guard n >= 0 else { return nil }
        guard let pointer, n > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: Int(n)))
    }

    /// The declared value length of an attribute in bytes (values left on disk are not loaded), nil when absent.
    public func valueLength(_ tag: DICOMTag) -> Int? {
        let n = tsr_item_value_length(pointer, tag.group, tag.element)
        return n >= 0 ? Int(n) : nil
    }

    /// The items of a sequence; empty when absent.
    public func sequence(_ tag: DICOMTag) -> [DICOMItem] {
        let count = tsr_item_sequence_count(pointer, tag.group, tag.element)
        guard count > 0 else { return [] }
        return (0..<UInt32(count)).compactMap { index in
            tsr_item_sequence_item(pointer, tag.group, tag.element, index).map { DICOMItem(pointer: $0, owner: owner) }
        }
    }

    /// The first item of a sequence, if any.
    public func firstItem(_ tag: DICOMTag) -> DICOMItem? {
        tsr_item_sequence_item(pointer, tag.group, tag.element, 0).map { DICOMItem(pointer: $0, owner: owner) }
    }
}
