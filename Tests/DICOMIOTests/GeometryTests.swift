import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

@testable import SampleData

@Suite("Series assembly and geometry", .computeBound)
struct GeometryTests {
    @Test("Oblique series: origin, spacing and direction from (0020,0032), (0020,0037), (0028,0030)")
    func obliqueGeometry() throws {
        let g = try loadVolume(fixture("explicit-le")).geometry
        let spec = FixtureFactory.SeriesSpec(name: "base")
        #expect(g.dimensions == SIMD3(40, 32, 8))
        #expect(abs(g.spacing.x - 0.7) < 1e-9 && abs(g.spacing.y - 0.8) < 1e-9 && abs(g.spacing.z - 2.5) < 1e-6)
        #expect((g.origin - spec.origin).length < 1e-6)
        #expect((g.direction.x - spec.rowCosine).length < 1e-6)
        #expect((g.direction.y - spec.columnCosine).length < 1e-6)
        #expect((g.direction.z - Vector3(0, 0, 1)).length < 1e-6)
    }

    @Test("Slices are sorted along the normal whatever the instance numbers and file names")
    func reversedSeries() throws {
        let all = try series(in: fixture("reversed"))
        let stack = try #require(all.first?.stacks.first)
        let distances = stack.slices.map(\.distance)
        #expect(distances == distances.sorted())
        // IOP (-1,0,0 / 0,1,0): normal is (0,0,-1), so the first slice is the most superior.
        #expect(stack.normal == Vector3(0, 0, -1))
        #expect(stack.slices.first!.position.z > stack.slices.last!.position.z)
        #expect(all[0].problems.isEmpty)
    }

    @Test("A missing slice is reported and blocks conversion")
    func gap() throws {
        let all = try series(in: fixture("gap"))
        let problem = try #require(all[0].problems.first)
        #expect(problem.kind == .missingSlices && problem.isBlocking)
        #expect(throws: DICOMError.self) { try Volume<Float>(series: all[0]) }
        do {
            _ = try Volume<Float>(series: all[0])
        } catch {
            #expect(error.code == .geometry)
            #expect(error.message.contains("missing"))
        }
    }

    @Test("Gantry tilt: reported, and the slice axis follows the sheared positions")
    func gantryTilt() throws {
        let all = try series(in: fixture("gantry-tilt"))
        #expect(all[0].problems.map(\.kind) == [.gantryTilt])
        let g = try Volume<Float>(series: all[0]).geometry
        let angle = acos(g.direction.z.dot(Vector3(0, 0, 1))) * 180 / .pi
        #expect(abs(angle - 15) < 0.01)
        // The last slice's origin is exactly where the file says.
        let expectedLast = Vector3(-14.25, -20.5 + 7 * 2.5 * tan(15 * .pi / 180), 33.75 + 7 * 2.5)
        #expect((g.position(0, 0, 7) - expectedLast).length < 1e-3)
        // Voxel volume is that of the un-sheared grid: 0.7 × 0.8 × 2.5 mm³.
        #expect(abs(g.voxelVolume - 0.7 * 0.8 * 2.5) < 1e-6)
    }

    @Test("Two series in one folder: both found; conversion without --series lists them")
    func twoSeries() throws {
        let all = try series(in: fixture("two-series"))
        #expect(all.count == 2)
        #expect(Set(all.map(\.sliceCount)) == [8, 5])
        do {
            _ = try SeriesSelection.select(from: all)
            Issue.record("selection should fail")
        } catch {
            #expect(error.code == .seriesSelection)
            for s in all { #expect(error.message.contains(s.seriesInstanceUID)) }
        }
        let second = try loadVolume(fixture("two-series"), series: all.first { $0.sliceCount == 5 }!.seriesInstanceUID)
        #expect(second.geometry.dimensions == SIMD3(24, 24, 5))
    }

    @Test("Mixed orientations in one series are split into stacks, largest first, and refused by default")
    func mixedOrientations() throws {
        var instances = try DirectoryScanner().scan(fixture("explicit-le")).instances
        for i in 0..<3 {
            instances[i].frames[0].rowCosine = Vector3(1, 0, 0)
            instances[i].frames[0].columnCosine = Vector3(0, 0, -1)
        }
        let all = SeriesAssembler().assemble(instances)
        #expect(all[0].stacks.map(\.slices.count) == [5, 3])
        let problem = try #require(all[0].problems.first { $0.kind == .mixedOrientations })
        #expect(problem.isBlocking)
        #expect(problem.message.contains("stack 0: 5 slice(s)") && problem.message.contains("stack 1: 3 slice(s)"))
        #expect(problem.message.contains("coronal") && problem.message.contains("axial"))
        #expect(all[0].selectedStack == nil)
        #expect(throws: DICOMError.self) { try Volume<Float>(series: all[0]) }
        do {
            _ = try all[0].primaryStack()
        } catch {
            #expect(error.code == .geometry && error.message.contains("--stack"), "\(error)")
        }
        // An explicit choice reads one stack; the refusal becomes a warning.
        let chosen = SeriesAssembler(stackChoice: .index(1)).assemble(instances)[0]
        #expect(try chosen.primaryStack().slices.count == 3)
        #expect(chosen.problems.contains { $0.kind == .mixedOrientations && !$0.isBlocking })
        #expect(try SeriesAssembler(stackChoice: .largest).assemble(instances)[0].primaryStack().slices.count == 5)
        let outOfRange = SeriesAssembler(stackChoice: .index(2)).assemble(instances)[0]
        #expect(outOfRange.problems.contains { $0.kind == .mixedOrientations && $0.isBlocking })
        #expect(throws: DICOMError.self) { try outOfRange.stack(at: 2) }
    }

    @Test("Non-uniform spacing is reported as blocking")
    func nonUniform() throws {
        var instances = try DirectoryScanner().scan(fixture("explicit-le")).instances
        let normal = instances[0].frames[0].normal
        let index = instances.indices.max {
            instances[$0].frames[0].position.dot(normal) < instances[$1].frames[0].position.dot(normal)
        }!
        instances[index].frames[0].position += 0.9 * normal
        let all = SeriesAssembler().assemble(instances)
        #expect(all[0].problems.contains { $0.kind == .nonUniformSpacing && $0.isBlocking })
    }
}
