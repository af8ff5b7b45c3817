// Reads SwiftPM's build description of the debug build (.build/<triple>/debug/description.json) for Fuzz/build.sh:
//   BuildPlan <description.json> flags <Module>     compiler arguments of the module, one per line
//   BuildPlan <description.json> sources <Module>   its source files, one per line
//   BuildPlan <description.json> closure <Module>…  the modules and every target they depend on, one per line
// Written in Swift so that the fuzz build needs nothing beyond the toolchain.
import Foundation

/// Arguments of SwiftPM's debug compile that the instrumented build replaces or does not need; the Bool says
/// whether the option takes a value.
let dropped: [String: Bool] = [
    "-incremental": false, "-enable-batch-mode": false, "-serialize-diagnostics": false, "-Onone": false,
    "-parseable-output": false, "-emit-objc-header": false, "-g": false, "-parse-as-library": false,
    "-index-store-path": true, "-emit-objc-header-path": true,
]

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("BuildPlan: " + message + "\n").utf8))
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: BuildPlan <description.json> flags|sources|closure <Module>…") }
guard let data = FileManager.default.contents(atPath: arguments[1]),
    let description = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
    let commands = description["swiftCommands"] as? [String: Any],
    let dependencies = description["targetDependencyMap"] as? [String: [String]]
else { fail("cannot read \(arguments[1]): build the package first (swift build --build-tests)") }

func command(_ module: String) -> [String: Any] {
    for (key, value) in commands where !key.contains("-tool.") {
        if let c = value as? [String: Any], c["moduleName"] as? String == module { return c }
    }
    fail("no Swift module \(module) in the build description")
}

switch arguments[2] {
case "flags":
    var out: [String] = []
    var skipNext = false
    var keepNext = false
    for a in command(arguments[3])["otherArguments"] as? [String] ?? [] {
        if skipNext {
            skipNext = false
            continue
        }
        if keepNext {
            keepNext = false
            out.append(a)
            continue
        }
        if a == "-Xcc" {
            keepNext = true
            out.append(a)
            continue
        }
        if a.hasPrefix("-j") { continue }
        if let takesValue = dropped[a] {
            skipNext = takesValue
            continue
        }
        out.append(a)
    }
    print(out.joined(separator: "\n"))
case "sources":
    print((command(arguments[3])["sources"] as? [String] ?? []).joined(separator: "\n"))
case "closure":
    var all = Set<String>()
    for m in arguments[3...] {
        all.insert(m)
        all.formUnion(dependencies[m] ?? [])
    }
    print(all.sorted().joined(separator: "\n"))
default:
    fail("unknown command \(arguments[2])")
}
