-- GET /recommendations for a uniformly drawn user id 1..$WRK_MAX_USER, with the key $WRK_API_KEY
local max_user = tonumber(os.getenv("WRK_MAX_USER") or "943")
local key = os.getenv("WRK_API_KEY") or ""
math.randomseed(42)
request = function()
  return wrk.format("GET", "/recommendations/" .. math.random(1, max_user) .. "?k=10", {["X-API-Key"] = key})
end
