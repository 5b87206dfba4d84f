// Kernel names for diagnostics and statistics: the function symbol that holds
// the kernel's address, and the source file it came from (the STT_FILE entry
// that precedes a translation unit's local symbols; our kernels live in
// anonymous namespaces, so they are local). Read from the ELF symbol table of
// the module (executable or addon) that contains the kernel.
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "emulator/control.h"

namespace lmk::emulator {
namespace {

std::string demangle(const char* symbol) {
  int status = 0;
  char* text = abi::__cxa_demangle(symbol, nullptr, nullptr, &status);
  if (status != 0 || !text) return symbol;
  std::string out(text);
  std::free(text);
  return out;
}

// Looks `offset` (an address relative to the module's load base, or absolute
// for a non-PIE executable) up in the file's .symtab.
bool lookup(const char* path, uintptr_t address, uintptr_t base, KernelName* out) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return false;
  }
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return false;
  const auto* bytes = static_cast<const unsigned char*>(map);
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(bytes);
  bool found = false;
  if (std::memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 && header->e_ident[EI_CLASS] == ELFCLASS64) {
    const uintptr_t value = header->e_type == ET_DYN ? address - base : address;
    const auto* sections = reinterpret_cast<const Elf64_Shdr*>(bytes + header->e_shoff);
    for (int s = 0; s < header->e_shnum && !found; ++s) {
      if (sections[s].sh_type != SHT_SYMTAB) continue;
      const auto* symbols = reinterpret_cast<const Elf64_Sym*>(bytes + sections[s].sh_offset);
      const char* names = reinterpret_cast<const char*>(bytes + sections[sections[s].sh_link].sh_offset);
      const size_t count = sections[s].sh_size / sizeof(Elf64_Sym);
      const char* file = "?";
      for (size_t i = 0; i < count; ++i) {
        const Elf64_Sym& sym = symbols[i];
        if (ELF64_ST_TYPE(sym.st_info) == STT_FILE) file = names + sym.st_name;
        if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
        if (value >= sym.st_value && value < sym.st_value + (sym.st_size ? sym.st_size : 1)) {
          out->name = demangle(names + sym.st_name);
          out->file = ELF64_ST_BIND(sym.st_info) == STB_LOCAL ? file : "?";
          found = true;
          break;
        }
      }
    }
  }
  munmap(map, static_cast<size_t>(st.st_size));
  return found;
}

}  // namespace

KernelName kernel_name(const void* kernel) {
  static std::mutex mutex;
  static auto* cache = new std::map<const void*, KernelName>();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache->find(kernel);
  if (it != cache->end()) return it->second;
  KernelName name{"?", "?"};
  Dl_info info;
  std::memset(&info, 0, sizeof(info));
  const auto address = reinterpret_cast<uintptr_t>(kernel);
  if (dladdr(kernel, &info) != 0) {
    const auto base = reinterpret_cast<uintptr_t>(info.dli_fbase);
    bool found = info.dli_fname && info.dli_fname[0] && lookup(info.dli_fname, address, base, &name);
    if (!found) lookup("/proc/self/exe", address, base, &name);
  }
  if (name.name == "?") {
    char text[32];
    std::snprintf(text, sizeof(text), "%p", kernel);
    name.name = text;
  }
  cache->emplace(kernel, name);
  return name;
}

std::string kernel_family(const KernelName& name) {
  std::string file = name.file;
  if (file == "?") {
    // A kernel with external linkage has no STT_FILE: use its namespace
    // below lmk::kernels (lmk::kernels::fam_cuda::dq_kernel -> fam).
    const std::string prefix = "lmk::kernels::";
    size_t at = name.name.find(prefix);
    if (at != std::string::npos) {
      size_t begin = at + prefix.size(), end = name.name.find("::", begin);
      if (end != std::string::npos && name.name.find_first_of("(<", begin) > end) {
        file = name.name.substr(begin, end - begin);
      }
    }
  }
  size_t slash = file.rfind('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  size_t cuda = file.find("_cuda");
  if (cuda != std::string::npos && cuda > 0) return file.substr(0, cuda);
  size_t dot = file.find('.');
  return dot == std::string::npos || dot == 0 ? file : file.substr(0, dot);
}

}  // namespace lmk::emulator
